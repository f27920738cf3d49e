from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from members import security_views
from ntars import health
from ntars.api import api

# The Django admin signs in through allauth (password, then the second factor), never its own password-only form.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("accounts/email/", security_views.email_managed),
    path("accounts/", include("allauth.urls")),
    path("reports/", include("reports.urls")),
    path("api/v1/", api.urls),
    path("alerts/", include("alerts.urls")),
    path("chat/", include("chat.urls")),
    path("", include("members.urls")),
    path("", include("frontend.urls")),
    path("django-admin/", admin.site.urls),
]
