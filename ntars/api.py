"""The versioned REST API used by the PWA: /api/v1/, OpenAPI schema at /api/v1/openapi.json.

Session authentication with CSRF (the PWA is same-origin). Apps add their routers here; each endpoint
checks access per object through its app's access_*/visible_to functions.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.security import django_auth

from reports.api import cases_router
from reports.api import router as reports_router

# No docs page: Swagger UI loads scripts from a CDN, which the CSP (rightly) refuses. The schema is enough.
api = NinjaAPI(title="NTARS API", version="1", urls_namespace="api-v1", auth=django_auth, docs_url=None)


@api.exception_handler(PermissionDenied)
def permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc) or "Not allowed."}, status=403)


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
    return api.create_response(request, {"detail": detail}, status=422)


@api.exception_handler(RequestDataTooBig)
def request_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return api.create_response(request, {"detail": "The request is too large."}, status=413)


api.add_router("/reports", reports_router)
api.add_router("/cases", cases_router)
