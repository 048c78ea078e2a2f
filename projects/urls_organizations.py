from django.urls import path

from projects import views_organizations as views

app_name = "organizations"

urlpatterns = [
    path("", views.organization_list, name="list"),
    path("<int:pk>/", views.organization_detail, name="detail"),
    path("<int:pk>/members/add/", views.member_add, name="member-add"),
    path("<int:pk>/members/<int:user_id>/", views.member_change, name="member-change"),
    path("<int:pk>/members/<int:user_id>/remove/", views.member_remove, name="member-remove"),
]
