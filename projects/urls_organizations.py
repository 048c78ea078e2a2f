from django.urls import path

from audit import views as history_views
from projects import views_levels
from projects import views_organizations as views

app_name = "organizations"

urlpatterns = [
    path("", views.organization_list, name="list"),
    path("<int:pk>/", views.organization_detail, name="detail"),
    path("<int:pk>/settings/", views_levels.organization_settings, name="settings"),
    path("<int:pk>/history/", history_views.organization_history, name="history"),
    path("<int:pk>/members/add/", views.member_add, name="member-add"),
    path("<int:pk>/members/<int:user_id>/", views.member_change, name="member-change"),
    path("<int:pk>/members/<int:user_id>/remove/", views.member_remove, name="member-remove"),
]
