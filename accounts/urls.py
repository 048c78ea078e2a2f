from django.urls import path

from accounts import views

app_name = "account"

urlpatterns = [path("", views.account, name="settings")]
