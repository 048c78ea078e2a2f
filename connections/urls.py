from django.urls import path

from connections import views

app_name = "connections"

urlpatterns = [
    path("", views.connection_list, name="list"),
    path("new/", views.connection_form, name="new"),
    path("<int:pk>/", views.connection_detail, name="detail"),
    path("<int:pk>/edit/", views.connection_form, name="edit"),
    path("<int:pk>/windows/", views.connection_windows, name="windows"),
    path("<int:pk>/test/", views.connection_test, name="test"),
    path("<int:pk>/forget-host-key/", views.connection_forget_host_key, name="forget-host-key"),
    path("<int:pk>/delete/", views.connection_delete, name="delete"),
]
