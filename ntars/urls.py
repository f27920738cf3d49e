from django.contrib import admin
from django.urls import include, path

from ntars import health
from ntars.api import api

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    path("reports/", include("reports.urls")),
    path("api/v1/", api.urls),
    path("alerts/", include("alerts.urls")),
    path("", include("members.urls")),
    path("", include("frontend.urls")),
    path("django-admin/", admin.site.urls),
]
