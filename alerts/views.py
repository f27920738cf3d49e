"""Alerts JSON endpoints for the PWA, and the alerts pages: parse, check access, call a service, render.

Session authentication with Django's CSRF check on every POST/DELETE (send the csrftoken cookie's value as
the X-CSRFToken header). Scripts on the server use `manage.py broadcast` instead (docs/alerts.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, time, timedelta
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts import push, selectors, services
from alerts.forms import BroadcastForm, PrefsForm
from alerts.models import AlertPrefs, Broadcast, BroadcastRecipient, PushSubscription
from members.models import Role, User

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


# --- pages ------------------------------------------------------------------------------------------------
# The Alerts page (everyone), the Broadcast page (wardens, BID admins) and a broadcast's own page. Plain forms
# that work without JavaScript; alerts-page.js adds what needs it (turning on push on this device).
def _sent_rows(broadcasts: Any) -> list[dict[str, Any]]:
    return [{"broadcast": b, "counts": selectors.broadcast_counts(broadcast=b)} for b in broadcasts]


@login_required
@require_http_methods(["GET", "POST"])
def alerts_page(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    current = selectors.prefs_of(user=user)
    initial = {"quiet_start": current.quiet_start, "quiet_end": current.quiet_end, "no_preview": current.no_preview,
               "muted_groups": selectors.muted_group_ids(user=user)}
    form = PrefsForm(user=user, initial=initial)
    action = request.POST.get("action") if request.method == "POST" else None
    if action == "prefs":
        form = PrefsForm(request.POST, user=user)
        if form.is_valid():
            data = form.cleaned_data
            services.prefs_update(user=user, quiet_start=data["quiet_start"], quiet_end=data["quiet_end"],
                                  no_preview=data["no_preview"], muted_group_ids=[g.pk for g in data["muted_groups"]])
            messages.success(request, "Your alert preferences are saved.")
            return redirect(f"{reverse('alerts:page')}#prefs")
    elif action == "remove_device":
        device = selectors.access_subscription(user=user, subscription_id=_post_id(request, "device"))
        label = str(device)
        services.subscription_delete(user=user, subscription_id=device.pk)
        messages.success(request, f"Removed {label}: it gets no more notifications.")
        return redirect(f"{reverse('alerts:page')}#devices")
    elif action == "ack":
        row = services.broadcast_acknowledge(user=user, broadcast_id=_post_id(request, "broadcast"))
        messages.success(request, f"Marked as seen: {row.broadcast.title}")
        return redirect(f"{reverse('alerts:page')}#history")
    elif action is not None:
        return HttpResponse("Unknown action", status=400, content_type="text/plain")
    devices = list(selectors.subscriptions_of(user=user))
    added = request.GET.get("added", "")
    context = {
        "form": form,
        "devices": devices,
        "added": next((d for d in devices if str(d.pk) == added), None),
        "no_preview": current.no_preview,
        "history": list(selectors.broadcasts_received(user=user)[:50]),
        "can_broadcast": selectors.can_broadcast(user=user),
    }
    return render(request, "alerts/alerts.html", context, status=400 if form.errors else 200)


def _post_id(request: HttpRequest, name: str) -> int:
    try:
        return int(request.POST.get(name, ""))
    except ValueError as exc:
        raise Http404("No such item") from exc


@login_required
@require_http_methods(["GET", "POST"])
def broadcast_new(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not selectors.can_broadcast(user=user):
        raise PermissionDenied("Only wardens and BID admins can broadcast")
    form = BroadcastForm(initial={"priority": Broadcast.Priority.INFO})
    problem = ""
    if request.method == "POST":
        form = BroadcastForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            try:
                broadcast = services.broadcast_create(
                    author=user, title=data["title"], text=data["text"], priority=data["priority"],
                    audience_all=data["audience_all"], group_ids=[g.pk for g in data["groups"]],
                    street_ids=[s.pk for s in data["streets"]], roles=data["roles"], expires_at=form.expires_at(),
                    photo=data["photo"], request=request, via="page",
                )
            except services.AlertsInvalid as exc:
                problem = str(exc)
            else:
                count = selectors.broadcast_counts(broadcast=broadcast)["recipients"]
                messages.success(request, f"Broadcast sent to {count} {'person' if count == 1 else 'people'}.")
                return redirect("alerts:broadcast_page", pk=broadcast.pk)
    context = {
        "form": form,
        "problem": problem,
        "sent": _sent_rows(selectors.broadcasts_sent_visible_to(user=user)[:20]),
    }
    return render(request, "alerts/broadcast_new.html", context, status=400 if form.errors or problem else 200)


@login_required
@require_http_methods(["GET", "POST"])
def broadcast_page(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    broadcast = selectors.access_broadcast(user=user, broadcast_id=pk)
    if request.method == "POST":
        services.broadcast_acknowledge(user=user, broadcast_id=broadcast.pk)
        messages.success(request, "Marked as seen.")
        return redirect("alerts:broadcast_page", pk=broadcast.pk)
    # Opening the alert in the app is a delivery too (counted once, for recipients only).
    services.broadcast_mark_delivered(user_id=user.pk, broadcast_id=broadcast.pk, via=BroadcastRecipient.Via.APP)
    try:
        mine: BroadcastRecipient | None = selectors.access_broadcast_recipient(user=user, broadcast_id=broadcast.pk)
    except Http404:
        mine = None  # a warden or BID admin looking at someone else's broadcast
    overseer = selectors.can_broadcast(user=user)
    context = {
        "broadcast": broadcast,
        "recipient": mine,
        "overseer": overseer,
        "counts": selectors.broadcast_counts(broadcast=broadcast) if overseer else None,
        "audience": selectors.broadcast_audience_summary(broadcast=broadcast) if overseer else None,
        "role_labels": [Role(r).label for r in broadcast.audience_roles if r in Role.values],
    }
    return render(request, "alerts/broadcast.html", context)
