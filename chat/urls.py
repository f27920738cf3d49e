from django.urls import path

from chat import pages

app_name = "chat"

urlpatterns = [
    path("", pages.groups, name="groups"),
    path("devices/", pages.devices, name="devices"),
    path("<int:group_id>/", pages.thread, name="thread"),
]
