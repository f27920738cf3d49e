from django.urls import path

from chat import api, pages

app_name = "chat"

urlpatterns = [
    path("", pages.groups, name="groups"),
    path("devices/", pages.devices, name="devices"),
    path("<int:group_id>/", pages.thread, name="thread"),
    # The JSON API (chat/api.py): the E2EE key directory, group epochs and encrypted blobs.
    path("api/devices", api.devices, name="api-devices"),
    path("api/devices/<str:device_id>/approve", api.device_approve, name="api-device-approve"),
    path("api/devices/<str:device_id>/revoke", api.device_revoke, name="api-device-revoke"),
    path("api/users/<int:user_id>/reenrol", api.user_reenrol, name="api-user-reenrol"),
    path("api/groups", api.groups, name="api-groups"),
    path("api/groups/<int:group_id>/directory", api.directory, name="api-directory"),
    path("api/groups/<int:group_id>/epochs", api.epochs, name="api-epochs"),
    path("api/groups/<int:group_id>/rotations", api.rotations, name="api-rotations"),
    path("api/blobs", api.blobs, name="api-blobs"),
    path("api/blobs/<str:blob_id>", api.blob, name="api-blob"),
]
