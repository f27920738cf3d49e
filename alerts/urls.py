from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("vapid-public-key", views.vapid_public_key, name="vapid_public_key"),
    path("subscriptions", views.subscriptions, name="subscriptions"),
    path("subscriptions/<int:pk>", views.subscription_detail, name="subscription_detail"),
    path("prefs", views.prefs, name="prefs"),
    path("broadcasts", views.broadcasts, name="broadcasts"),
    path("broadcasts/<int:pk>", views.broadcast_detail, name="broadcast_detail"),
    path("broadcasts/<int:pk>/ack", views.broadcast_ack, name="broadcast_ack"),
    path("broadcasts/<int:pk>/photo", views.broadcast_photo, name="broadcast_photo"),
]
