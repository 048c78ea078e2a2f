from django.urls import path

from connections import views

urlpatterns = [
    path("", views.connection_list, name="connection-list"),
    path("new/", views.connection_form, name="connection-new"),
    path("<int:pk>/", views.connection_detail, name="connection-detail"),
    path("<int:pk>/edit/", views.connection_form, name="connection-edit"),
    path("<int:pk>/test/", views.connection_test, name="connection-test"),
    path("<int:pk>/forget-host-key/", views.connection_forget_host_key, name="connection-forget-host-key"),
    path("<int:pk>/delete/", views.connection_delete, name="connection-delete"),
]
