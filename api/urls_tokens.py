"""/account/tokens/: the user's own API tokens (a page, in the API's table: tests/test_api.py)."""
from django.urls import path

from api import tokens

urlpatterns = [
    path("", tokens.token_list, name="api-tokens"),
    path("<int:pk>/revoke/", tokens.token_revoke, name="api-token-revoke"),
]
