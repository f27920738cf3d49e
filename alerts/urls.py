from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    # Pages (HTML, trailing slash); the JSON endpoints below have none.
    path("", views.alerts_page, name="page"),
    path("broadcasts/new/", views.broadcast_new, name="broadcast_new"),
    path("broadcasts/<int:pk>/", views.broadcast_page, name="broadcast_page"),
    path("vapid-public-key", views.vapid_public_key, name="vapid_public_key"),
    path("subscriptions", views.subscriptions, name="subscriptions"),
    path("subscriptions/<int:pk>", views.subscription_detail, name="subscription_detail"),
    path("prefs", views.prefs, name="prefs"),
    path("broadcasts", views.broadcasts, name="broadcasts"),
    path("broadcasts/<int:pk>", views.broadcast_detail, name="broadcast_detail"),
    path("broadcasts/<int:pk>/ack", views.broadcast_ack, name="broadcast_ack"),
    path("broadcasts/<int:pk>/photo", views.broadcast_photo, name="broadcast_photo"),
]
