"""The chat JSON API under /chat/api/ (the E2EE key directory, group epochs, encrypted blobs).

Session auth, CSRF header on writes (Django's middleware), JSON in and out; refusals are
{"error": code, "detail": text} with a 4xx status. Every object is checked per user: anything the caller may
not see answers 404, exactly as if it did not exist. The views only parse, call chat.services/selectors and
render. The contract is in docs/security.md ("Key directory API").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse

from chat import crypto, selectors, services
from chat.protocol import timestamp
from chat.selectors import ChatNotFound
from chat.services import KeysRefused
from members.models import User

View = Callable[..., HttpResponse]


def error(code: str, detail: str, status: int, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail, **extra}, status=status)


def endpoint(*methods: str) -> Callable[[View], View]:
    """Signed-in callers only; the allowed methods; refusals from services and selectors become JSON errors."""

    def decorate(view: View) -> View:
        @wraps(view)
        def run(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return error("unauthenticated", "sign in first", 401)
            if request.method not in methods:
                response = error("method_not_allowed", f"use {' or '.join(methods)}", 405)
                response["Allow"] = ", ".join(methods)
                return response
            try:
                response = view(request, *args, **kwargs)
            except ChatNotFound as exc:
                return error("not_found", str(exc), 404)
            except KeysRefused as exc:
                return error(exc.code, exc.detail, exc.status, **exc.extra)
            except RequestDataTooBig:
                return error("too_large", "the request is too large", 413)
            response["Cache-Control"] = "private, no-store"
            return response

        return run

    return decorate


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise KeysRefused("invalid", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise KeysRefused("invalid", "the body is a JSON object")
    return data


# --- devices -----------------------------------------------------------------------------------------------


def _device_row(device: Any) -> dict[str, Any]:
    return {
        "device_id": device.device_id, "label": device.label, "status": device.status,
        "fingerprint": selectors.device_fingerprint(device), "created_at": timestamp(device.created_at),
        "sign_pub": device.sign_pub, "dh_pub": device.dh_pub,
    }


@endpoint("GET", "POST")
def devices(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if request.method == "GET":
        return JsonResponse({"devices": [_device_row(d) for d in selectors.devices_of_user(user=user)]})
    data = _body(request)
    registered = services.device_register(
        user=user, device_id=data.get("device_id"), label=data.get("label"), sign_pub=data.get("sign_pub"),
        dh_pub=data.get("dh_pub"), request=request,
    )
    return JsonResponse({"device_id": registered.device.device_id, "status": registered.device.status},
                        status=201 if registered.created else 200)


@endpoint("POST")
def device_approve(request: HttpRequest, device_id: str) -> HttpResponse:
    data = _body(request)
    device = services.device_approve(user=_user(request), device_id=device_id,
                                     approver_device=data.get("approver_device"), signature=data.get("signature"),
                                     request=request)
    return JsonResponse({"device_id": device.device_id, "status": device.status})


@endpoint("POST")
def device_revoke(request: HttpRequest, device_id: str) -> HttpResponse:
    device = services.device_revoke(user=_user(request), device_id=device_id, request=request)
    return JsonResponse({"device_id": device.device_id, "status": device.status})


@endpoint("POST")
def user_reenrol(request: HttpRequest, user_id: int) -> HttpResponse:
    revoked = services.user_reenrol(actor=_user(request), user_id=user_id, request=request)
    return JsonResponse({"user": user_id, "revoked": revoked})


# --- groups, directory, epochs --------------------------------------------------------------------------------


@endpoint("GET")
def groups(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"groups": selectors.groups_overview(user=_user(request))})


@endpoint("GET")
def directory(request: HttpRequest, group_id: int) -> HttpResponse:
    group = selectors.access_group(user=_user(request), group_id=group_id)
    return JsonResponse({"members": selectors.group_directory(group=group)})


@endpoint("GET")
def epochs(request: HttpRequest, group_id: int) -> HttpResponse:
    user = _user(request)
    group = selectors.access_group(user=user, group_id=group_id)
    device_id = request.GET.get("device", "")
    if not device_id:
        raise KeysRefused("invalid", "say which device: ?device=<device_id>")
    device = selectors.access_own_device(user=user, device_id=device_id)
    return JsonResponse(selectors.group_epochs_for_device(group=group, device=device))


@endpoint("POST")
def rotations(request: HttpRequest, group_id: int) -> HttpResponse:
    rotation = _body(request).get("rotation")
    if isinstance(rotation, str):
        data = rotation.encode("utf-8")
    elif isinstance(rotation, dict):
        try:
            data = crypto.canonical_json(rotation)
        except crypto.E2EEError:
            raise KeysRefused("malformed", "not a v1 rotation record") from None
    else:
        raise KeysRefused("invalid", "send {rotation: <the signed rotation record>}")
    epoch = services.rotation_accept(user=_user(request), group_id=group_id, rotation=data)
    return JsonResponse({"epoch": epoch.epoch}, status=201)


# --- encrypted attachment blobs ----------------------------------------------------------------------------


@endpoint("POST")
def blobs(request: HttpRequest) -> HttpResponse:
    try:
        group_id = int(request.GET.get("group", ""))
    except ValueError:
        raise KeysRefused("invalid", "say which group: ?group=<id>") from None
    limit = settings.CHAT_BLOB_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise KeysRefused("too_large", f"blobs are at most {limit} bytes", status=413)
    if declared <= 0:
        raise KeysRefused("invalid", "the blob is empty")
    if request.content_type != "application/octet-stream":
        raise KeysRefused("unsupported_media_type", "send the encrypted bytes as application/octet-stream",
                          status=415)
    blob = services.blob_store(user=_user(request), group_id=group_id, data=request.body)
    return JsonResponse({"blob_id": blob.blob_id, "expires_at": timestamp(blob.expires_at)}, status=201)


@endpoint("GET")
def blob(request: HttpRequest, blob_id: str) -> HttpResponse:
    found = selectors.access_blob(user=_user(request), blob_id=blob_id)
    path = services.blob_path(found.blob_id)
    if not path.is_file():
        raise ChatNotFound("no such blob")
    response = FileResponse(path.open("rb"), content_type="application/octet-stream")
    response["Content-Disposition"] = "attachment"
    return response
