"""Hub protocol v1: frame schemas, parsing, error codes and close codes (docs/protocol.md).

Shared by the server (chat.consumers) and the Python client (chat.client); no Django imports, so the client
can run anywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

VERSION = 1
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

CLIENT_FRAMES = ("hello", "send", "retract", "ping")
SERVER_FRAMES = (
    "welcome", "ready", "ack", "message", "retracted", "presence", "caught_up", "membership", "error", "revoked", "pong",
    "keys.changed", "epoch.rotated", "alert", "report_status",
)

# WebSocket close codes (docs/protocol.md). Clients reconnect on everything except CLOSE_REVOKED.
CLOSE_REVOKED = 4401  # session ended, account disabled, or not signed in: sign in again
CLOSE_PROTOCOL_ABUSE = 4400  # too many bad frames
CLOSE_RATE_ABUSE = 4429  # too many rate-limited frames
CLOSE_RETRY = 4503  # the hub lost its channel layer (or another dependency): reconnect with backoff
NO_RECONNECT_CLOSE_CODES = frozenset({CLOSE_REVOKED})

# Stable error codes: code -> retryable.
ERRORS: dict[str, bool] = {
    "bad_json": False,  # not a JSON text frame
    "bad_frame": False,  # not a JSON object with a string `type`, or a binary frame
    "too_large": False,  # frame above HUB_MAX_FRAME_BYTES
    "invalid_frame": False,  # fails the frame's JSON Schema
    "unknown_type": False,
    "unsupported_version": False,
    "hello_required": False,
    "duplicate_hello": False,
    "bad_envelope": False,  # not base64
    "envelope_too_large": False,
    "not_member": False,
    "not_found": False,  # retract: no such (unexpired) message
    "forbidden": False,  # retract: neither the sender nor a moderator
    "conflict": False,  # client_id already used for another group
    "unknown_device": False,  # hello/send: the device is not an approved, unrevoked device of this user
    "stale_epoch": True,  # send: the envelope is not in the group's current epoch; refresh epochs, re-encrypt
    "rotation_required": True,  # send: a member or device left; rotate the group key, re-encrypt, resend
    "rate_limited": True,
    "unavailable": True,  # database (or other dependency) down: nothing was stored
    "internal": True,
}


class ProtocolError(Exception):
    """A frame the hub refuses; becomes an `error` frame, the socket stays open."""

    def __init__(self, code: str, detail: str, *, ref: str | None = None) -> None:
        assert code in ERRORS, code
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.ref = ref

    def frame(self) -> dict[str, Any]:
        return error_frame(self.code, self.detail, ref=self.ref)


def error_frame(code: str, detail: str, *, ref: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail[:300], "retryable": ERRORS[code]}
    if ref:
        frame["ref"] = ref
    return frame


@cache
def validator(frame_type: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{frame_type}.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_client_frame(text: str | None, *, max_bytes: int) -> dict[str, Any]:
    """Parse and validate one client frame, or raise ProtocolError. Size is checked before parsing."""
    if text is None:
        raise ProtocolError("bad_frame", "frames are JSON text, not binary")
    # A character is at most 4 bytes: only encode when the length alone cannot decide.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes):
        raise ProtocolError("too_large", f"frame above {max_bytes} bytes")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "frame is not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("bad_frame", "a frame is a JSON object with a string `type`")
    frame_type = data["type"]
    if frame_type not in CLIENT_FRAMES:
        raise ProtocolError("unknown_type", f"unknown frame type (expected one of {', '.join(CLIENT_FRAMES)})")
    ref = data.get("client_id") if isinstance(data.get("client_id"), str) and len(data["client_id"]) <= 64 else None
    try:
        error = next(iter(validator(frame_type).iter_errors(data)), None)
    except RecursionError:
        raise ProtocolError("invalid_frame", "frame nests too deeply", ref=ref) from None
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "frame"
        raise ProtocolError("invalid_frame", f"{frame_type}: {where}: {error.validator} check failed", ref=ref)
    return data


def validate_server_frame(frame: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless `frame` matches its schema (tests and the client use it)."""
    frame_type = frame.get("type")
    if frame_type not in SERVER_FRAMES:
        raise ValueError(f"unknown server frame type {frame_type!r}")
    validator(frame_type).validate(frame)


def envelope_decode(text: str, *, max_bytes: int, ref: str | None = None) -> bytes:
    """The envelope's bytes from its base64 text, or ProtocolError (the bytes themselves are never read)."""
    if math.ceil(len(text) / 4) * 3 > max_bytes + 3:
        raise ProtocolError("envelope_too_large", f"envelope above {max_bytes} bytes", ref=ref)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad_envelope", "envelope is not base64", ref=ref) from None
    if not data:
        raise ProtocolError("bad_envelope", "envelope is empty", ref=ref)
    if len(data) > max_bytes:
        raise ProtocolError("envelope_too_large", f"envelope above {max_bytes} bytes", ref=ref)
    return data


def envelope_encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def timestamp(moment: datetime) -> str:
    """Wire format of every time: ISO 8601 in UTC with microseconds."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def group_channel(group_id: int) -> str:
    """Channel-layer group of everyone connected to a street group."""
    return f"group.{group_id}"
