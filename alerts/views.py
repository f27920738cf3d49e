"""Alerts JSON endpoints for the PWA and for wardens' scripts: parse, check access, call a service, render.

Session authentication with Django's CSRF check on every POST/DELETE (send the csrftoken cookie's value as
the X-CSRFToken header). Scripts on the server use `manage.py broadcast` instead (docs/alerts.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, time, timedelta
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts import push, selectors, services
from alerts.models import AlertPrefs, Broadcast, PushSubscription
from members.models import User

View = Callable[..., HttpResponse]


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def api(view: View) -> View:
    """Signed-in users only (401 otherwise); domain errors become JSON 400/403/404."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return _error(401, "Sign in first")
        try:
            return view(request, *args, **kwargs)
        except Http404 as exc:
            return _error(404, str(exc) or "Not found")
        except PermissionDenied as exc:
            return _error(403, str(exc) or "Not allowed")
        except (services.AlertsInvalid, push.PushPayloadTooLarge) as exc:
            return _error(400, str(exc))

    return wrapper


def _body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise services.AlertsInvalid("The body is not valid JSON") from exc
        if not isinstance(data, dict):
            raise services.AlertsInvalid("The body must be a JSON object")
        return data
    return {key: request.POST.getlist(key) if len(request.POST.getlist(key)) > 1 else request.POST.get(key)
            for key in request.POST}


def _int_list(value: Any, name: str) -> list[int]:
    if value in (None, ""):
        return []
    items = value if isinstance(value, list) else [value]
    try:
        return [int(item) for item in items]
    except (TypeError, ValueError) as exc:
        raise services.AlertsInvalid(f"{name} must be a list of ids") from exc


def _str_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() in {"1", "true", "on", "yes"}


def _time(value: Any, name: str) -> time | None:
    if value in (None, ""):
        return None
    try:
        return time.fromisoformat(str(value))
    except ValueError as exc:
        raise services.AlertsInvalid(f"{name} must be a time like 22:00") from exc


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


# --- devices ----------------------------------------------------------------------------------------------
@require_GET
def vapid_public_key(request: HttpRequest) -> JsonResponse:
    """The application server key for PushManager.subscribe() (public by design)."""
    return JsonResponse({"publicKey": push.vapid_public_key()})


def _device(subscription: PushSubscription) -> dict[str, Any]:
    return {
        "id": subscription.pk,
        "label": subscription.label,
        "push_service": subscription.endpoint.split("/", 3)[2],
        "created_at": subscription.created_at.isoformat(),
        "last_success_at": subscription.last_success_at.isoformat() if subscription.last_success_at else None,
    }


@require_http_methods(["GET", "POST"])
@api
def subscriptions(request: HttpRequest) -> JsonResponse:
    user = _user(request)
    if request.method == "GET":
        return JsonResponse({"devices": [_device(s) for s in selectors.subscriptions_of(user=user)]})
    data = _body(request)
    info = data.get("subscription") if isinstance(data.get("subscription"), dict) else data
    keys = info.get("keys") if isinstance(info.get("keys"), dict) else {}
    subscription = services.subscription_save(
        user=user, endpoint=str(info.get("endpoint") or ""), p256dh=str(keys.get("p256dh") or ""),
        auth=str(keys.get("auth") or ""), label=str(data.get("label") or ""),
    )
    return JsonResponse(_device(subscription), status=201)


@require_http_methods(["DELETE"])
@api
def subscription_detail(request: HttpRequest, pk: int) -> HttpResponse:
    services.subscription_delete(user=_user(request), subscription_id=pk)
    return HttpResponse(status=204)


# --- preferences ------------------------------------------------------------------------------------------
def _prefs(prefs: AlertPrefs) -> dict[str, Any]:
    return {
        "quiet_start": prefs.quiet_start.strftime("%H:%M") if prefs.quiet_start else None,
        "quiet_end": prefs.quiet_end.strftime("%H:%M") if prefs.quiet_end else None,
        "no_preview": prefs.no_preview,
        "muted_groups": sorted(prefs.muted_groups.values_list("pk", flat=True)) if prefs.pk else [],
    }


@require_http_methods(["GET", "POST"])
@api
def prefs(request: HttpRequest) -> JsonResponse:
    user = _user(request)
    if request.method == "POST":
        data = _body(request)
        current = selectors.prefs_of(user=user)
        services.prefs_update(
            user=user,
            quiet_start=_time(data.get("quiet_start"), "quiet_start") if "quiet_start" in data else current.quiet_start,
            quiet_end=_time(data.get("quiet_end"), "quiet_end") if "quiet_end" in data else current.quiet_end,
            no_preview=_bool(data["no_preview"]) if "no_preview" in data else current.no_preview,
            muted_group_ids=_int_list(data["muted_groups"], "muted_groups") if "muted_groups" in data
            else selectors.muted_group_ids(user=user),
        )
    return JsonResponse(_prefs(selectors.prefs_of(user=user)))


# --- broadcasts -------------------------------------------------------------------------------------------
def _sent(broadcast: Broadcast) -> dict[str, Any]:
    return {
        **services.broadcast_banner(broadcast),
        "audience": selectors.broadcast_audience_summary(broadcast=broadcast),
        "counts": selectors.broadcast_counts(broadcast=broadcast),
    }


def _expiry(data: dict[str, Any]) -> datetime | None:
    if data.get("expires_in_minutes") not in (None, ""):
        try:
            return timezone.now() + timedelta(minutes=int(data["expires_in_minutes"]))
        except (TypeError, ValueError) as exc:
            raise services.AlertsInvalid("expires_in_minutes must be a number") from exc
    if data.get("expires_at") not in (None, ""):
        when = parse_datetime(str(data["expires_at"]))
        if when is None or timezone.is_naive(when):
            raise services.AlertsInvalid("expires_at must be an ISO date-time with a time zone")
        return when
    return None


@require_http_methods(["GET", "POST"])
@api
def broadcasts(request: HttpRequest) -> JsonResponse:
    user = _user(request)
    if request.method == "POST":
        data = _body(request)
        audience = data.get("audience") if isinstance(data.get("audience"), dict) else data
        broadcast = services.broadcast_create(
            author=user,
            title=str(data.get("title") or ""),
            text=str(data.get("text") or ""),
            priority=str(data.get("priority") or Broadcast.Priority.INFO),
            audience_all=_bool(audience.get("all") or audience.get("audience_all")),
            group_ids=_int_list(audience.get("groups"), "groups"),
            street_ids=_int_list(audience.get("streets"), "streets"),
            roles=_str_list(audience.get("roles")),
            expires_at=_expiry(data),
            photo=request.FILES.get("photo"),
            request=request,
        )
        return JsonResponse(_sent(broadcast), status=201)
    received = [
        {**services.broadcast_banner(row.broadcast), "seen": row.seen_at is not None}
        for row in selectors.broadcasts_received(user=user)[:100]
    ]
    sent = [_sent(b) for b in selectors.broadcasts_sent_visible_to(user=user)[:100]]
    return JsonResponse({"received": received, "sent": sent, "can_broadcast": selectors.can_broadcast(user=user)})


@require_GET
@api
def broadcast_detail(request: HttpRequest, pk: int) -> JsonResponse:
    user = _user(request)
    broadcast = selectors.access_broadcast(user=user, broadcast_id=pk)
    if selectors.can_broadcast(user=user):
        return JsonResponse(_sent(broadcast))
    return JsonResponse(services.broadcast_banner(broadcast))


@require_POST
@api
def broadcast_ack(request: HttpRequest, pk: int) -> JsonResponse:
    row = services.broadcast_acknowledge(user=_user(request), broadcast_id=pk)
    return JsonResponse({"id": pk, "seen_at": row.seen_at.isoformat() if row.seen_at else None})


@require_GET
@api
def broadcast_photo(request: HttpRequest, pk: int) -> HttpResponse:
    broadcast = selectors.access_broadcast(user=_user(request), broadcast_id=pk)
    if not broadcast.photo:
        raise Http404("No photo")
    response = FileResponse(broadcast.photo.open("rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    return response
