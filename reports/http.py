"""Upload size limits shared by the report page and the API: refuse oversize requests with 413, early."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


def request_oversize_message(request: HttpRequest) -> str | None:
    """A reason to refuse the request from its declared length alone, before the body is read."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    limit = settings.REPORT_UPLOAD_MAX_BYTES
    if length > limit:
        return (
            f"The report and its photos add up to {length / 1_048_576:.1f} MB; the limit is "
            f"{limit / 1_048_576:.0f} MB. Nothing was saved: send fewer or smaller photos."
        )
    return None


TOO_LARGE_BODY = "The report's text is too large. Nothing was saved: shorten it and send it again."


def too_large_json(message: str) -> JsonResponse:
    return JsonResponse({"detail": message}, status=413)


def upload_guard(run: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap an API operation: answer 413 on a declared oversize body before anything parses it."""

    @wraps(run)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        message = request_oversize_message(request)
        if message is not None:
            return too_large_json(message)
        return run(request, *args, **kwargs)

    return guarded
