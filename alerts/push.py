"""Web Push transport: the VAPID key, endpoint checks, and concurrent sending. No database access here.

Sending is asyncio + aiohttp through pywebpush's `webpush_async`, one shared connection pool per batch:
measured on 2 cores it needs about a third of the CPU of the thread-pool + requests variant
(docs/alerts.md, benchmarks/push_fanout.py).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush_async

logger = logging.getLogger(__name__)

# RFC 8291: a 4096-byte push body leaves 3993 bytes of plaintext after the aes128gcm header (86 bytes),
# the padding delimiter (1) and the tag (16).
MAX_PAYLOAD_BYTES = 3993
MAX_BODY_BYTES = 4096
# RFC 8292 allows at most 24 hours; 12 hours leaves room for clock skew.
VAPID_EXP_SECONDS = 12 * 3600
SEND_TIMEOUT_SECONDS = 15
URGENCIES = ("very-low", "low", "normal", "high")
_TOPIC_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class PushPayloadTooLarge(ValueError):
    pass


def b64url(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


# --- VAPID key -------------------------------------------------------------------------------------------
_vapid_lock = threading.Lock()
_vapid_cache: dict[tuple[str, str, str], Vapid02] = {}


def vapid_key_file() -> Path:
    return Path(settings.DATA_DIR) / "vapid_private.pem"


def vapid_private_key_generate() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def vapid_private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def vapid_public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The application server key as the browser's PushManager.subscribe() wants it: base64url, uncompressed."""
    raw = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(raw)


def write_private_pem(path: Path, pem: bytes, *, overwrite: bool = False) -> None:
    """Write a private key readable by its owner only (created 0600, never world-readable even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(path, 0o600)


def _parse_private(value: str) -> ec.EllipticCurvePrivateKey:
    value = value.strip()
    if "-----BEGIN" in value:
        key = serialization.load_pem_private_key(value.encode(), password=None)
    else:
        raw = b64url_decode(value.replace("\n", ""))
        if len(raw) == 32:
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
        else:
            key = serialization.load_der_private_key(raw, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ImproperlyConfigured("VAPID_PRIVATE_KEY must be an EC P-256 private key")
    return key


def _load_or_create_default() -> ec.EllipticCurvePrivateKey:
    path = vapid_key_file()
    if not path.exists():
        if not settings.VAPID_KEY_AUTOGENERATE:
            raise ImproperlyConfigured(
                "No VAPID key: run `manage.py vapid_keys` and set VAPID_PRIVATE_KEY_FILE (docs/alerts.md)"
            )
        try:
            write_private_pem(path, vapid_private_pem(vapid_private_key_generate()))
            logger.info("generated a VAPID key in %s", path)
        except FileExistsError:
            pass  # another process got there first: use its key
    return _parse_private(path.read_text(encoding="utf-8"))


def vapid() -> Vapid02:
    """The configured VAPID signer (generated on first use in the embedded default)."""
    config = (settings.VAPID_PRIVATE_KEY, settings.VAPID_PUBLIC_KEY,
              "" if settings.VAPID_PRIVATE_KEY else str(settings.DATA_DIR))
    with _vapid_lock:
        signer = _vapid_cache.get(config)
        if signer is None:
            key = _parse_private(settings.VAPID_PRIVATE_KEY) if settings.VAPID_PRIVATE_KEY else _load_or_create_default()
            if settings.VAPID_PUBLIC_KEY and settings.VAPID_PUBLIC_KEY.rstrip("=") != vapid_public_b64(key):
                raise ImproperlyConfigured("VAPID_PUBLIC_KEY does not belong to VAPID_PRIVATE_KEY")
            signer = _vapid_cache[config] = Vapid02(key)
    return signer


def vapid_public_key() -> str:
    return vapid_public_b64(vapid().private_key)


def vapid_claims(endpoint: str) -> dict[str, str | int]:
    """A fresh claims dict for one send: pywebpush writes aud and exp into the dict it is given."""
    parts = urlsplit(endpoint)
    return {
        "sub": settings.VAPID_SUBJECT,
        "aud": f"{parts.scheme}://{parts.netloc}",
        "exp": int(time.time()) + VAPID_EXP_SECONDS,
    }


# --- checks ----------------------------------------------------------------------------------------------
def payload_check(payload: bytes) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PushPayloadTooLarge(
            f"push payload is {len(payload)} bytes; at most {MAX_PAYLOAD_BYTES} fit a {MAX_BODY_BYTES}-byte "
            "encrypted push: send ids and let the app fetch the rest"
        )


def topic_check(topic: str) -> None:
    if len(topic) > 32 or not set(topic) <= _TOPIC_CHARS:
        raise ValueError("push topic must be at most 32 characters of A-Z a-z 0-9 - _")


def keys_check(*, p256dh: str, auth: str) -> None:
    """Raise ValueError unless these are a browser subscription's P-256 public key and 16-byte auth secret."""
    try:
        point = b64url_decode(p256dh)
        secret = b64url_decode(auth)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, TypeError) as exc:
        raise ValueError("subscription keys are not valid base64url P-256 keys") from exc
    if len(point) != 65 or len(secret) != 16:
        raise ValueError("subscription keys have the wrong length")


def endpoint_refusal(endpoint: str, *, resolve: bool = True) -> str | None:
    """Why a push endpoint must not be used (SSRF guard), or None when it may.

    Refuses non-https URLs, credentials in URLs, and hosts that resolve to private, loopback, link-local or
    otherwise non-global addresses, unless the host or address is in PUSH_ENDPOINT_ALLOWLIST or
    PUSH_ALLOW_PRIVATE_ENDPOINTS is on.
    """
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    host = parts.hostname
    if parts.scheme not in {"https", "http"} or not host or len(endpoint) > 2048:
        return "not an https URL"
    if parts.username or parts.password:
        return "URL carries credentials"
    allow = set(settings.PUSH_ENDPOINT_ALLOWLIST)
    if host in allow:
        return None
    if parts.scheme != "https":
        return "push endpoints must use https"
    if settings.PUSH_ALLOW_PRIVATE_ENDPOINTS:
        return None
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        if not resolve:
            return None
        try:
            infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return "host does not resolve"
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}
    for address in addresses:
        if str(address) not in allow and not address.is_global:
            return "endpoint is on a private, loopback or link-local address"
    return None


# --- sending ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outgoing:
    id: int
    endpoint: str
    p256dh: str
    auth: str
    payload: bytes
    ttl: int
    urgency: str
    topic: str = ""


@dataclass(frozen=True)
class Outcome:
    id: int
    status: int  # HTTP status; 0 when no answer came (network error, timeout)
    retry_after: str | None = None
    error: str = ""

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status in {404, 410}

    @property
    def retryable(self) -> bool:
        return self.status in {0, 408, 429} or self.status >= 500


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: either delay-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


async def _send_one(item: Outgoing, signer: Vapid02, session: aiohttp.ClientSession,
                    limit: asyncio.Semaphore) -> Outcome:
    headers: dict[str, str | int | float] = {"Urgency": item.urgency}
    if item.topic:
        headers["Topic"] = item.topic
    async with limit:
        try:
            response = await webpush_async(
                subscription_info={"endpoint": item.endpoint, "keys": {"p256dh": item.p256dh, "auth": item.auth}},
                data=item.payload.decode(),
                vapid_private_key=signer,
                vapid_claims=vapid_claims(item.endpoint),
                ttl=max(1, item.ttl),
                headers=headers,
                aiohttp_session=session,
                timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_SECONDS),  # type: ignore[arg-type]
            )
        except WebPushException as exc:
            return Outcome(item.id, exc.status_code or 0, exc.retry_after, f"HTTP {exc.status_code}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Outcome(item.id, 0, None, type(exc).__name__)
        except Exception as exc:  # a bad key must not stop the rest of the batch
            logger.exception("push %s could not be sent", item.id)
            return Outcome(item.id, 0, None, type(exc).__name__)
    status = getattr(response, "status", 0)
    return Outcome(item.id, int(status), None)


async def send_many_async(items: Sequence[Outgoing], *, concurrency: int) -> list[Outcome]:
    signer = vapid()
    limit = asyncio.Semaphore(max(1, concurrency))
    connector = aiohttp.TCPConnector(limit=max(1, concurrency), ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=connector) as session:
        return list(await asyncio.gather(*(_send_one(item, signer, session, limit) for item in items)))


def send_many(items: Sequence[Outgoing], *, concurrency: int | None = None) -> list[Outcome]:
    """Send every push concurrently and return one outcome per item (never raises for a single failure)."""
    if not items:
        return []
    concurrency = concurrency or settings.PUSH_CONCURRENCY
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(send_many_async(items, concurrency=concurrency))
    # Called from inside an event loop (an async caller that forgot sync_to_async): use a fresh thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(send_many_async(items, concurrency=concurrency))).result()

