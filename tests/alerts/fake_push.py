"""A local fake Web Push service: what Mozilla's or Google's push service would check, on 127.0.0.1.

It verifies the VAPID JWT (ES256 signature with the server's public key, aud == the endpoint's origin, exp in
the future and within 24 hours, sub present), requires TTL and a valid Urgency header, decrypts the aes128gcm
body with the subscription's private key, records every delivery, and can be scripted to answer 201, 404,
410, 429 or 503 (with Retry-After). Requests that fail a check get 400/401/403 and land in `errors`.

Used by tests/alerts and by benchmarks/push_fanout.py (which runs it in its own process, `accept_any=True`).
"""

from __future__ import annotations

import base64
import json
import resource
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

URGENCIES = frozenset({"very-low", "low", "normal", "high"})
MAX_BODY = 4096


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url_encode(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


@dataclass(frozen=True)
class Reply:
    status: int = 201
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeSubscription:
    endpoint: str
    p256dh: str
    auth: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)

    def as_json(self) -> dict[str, Any]:
        """What the browser's PushSubscription.toJSON() gives."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


@dataclass
class Delivery:
    endpoint: str
    status: int
    headers: dict[str, str]
    ttl: int
    urgency: str
    topic: str | None
    claims: dict[str, Any]
    body_size: int
    plaintext: bytes | None
    at: float

    def json(self) -> Any:
        assert self.plaintext is not None
        return json.loads(self.plaintext)


def new_keys() -> tuple[ec.EllipticCurvePrivateKey, str, str]:
    """A browser-like subscription key pair: (private key, p256dh, auth), base64url like PushSubscription."""
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return key, b64url_encode(raw), b64url_encode(secrets.token_bytes(16))


class FakePushService:
    def __init__(self, *, vapid_public_key: str, accept_any: bool = False, decrypt: bool = True) -> None:
        """vapid_public_key: the application server key in base64url (what the browser is given)."""
        self.vapid_public_key = vapid_public_key
        self._vapid_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(vapid_public_key))
        self.accept_any = accept_any
        self.decrypt = decrypt
        self.deliveries: list[Delivery] = []
        self.attempts: list[Delivery] = []
        self.errors: list[str] = []
        self._subs: dict[str, FakeSubscription] = {}
        self._scripts: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self, port: int = 0) -> FakePushService:
        service = self

        class Handler(_Handler):
            fake = service

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 1024
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-push",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakePushService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- test helpers -------------------------------------------------------------------------------------
    def subscribe(self) -> FakeSubscription:
        """A new subscription, as a browser would get from PushManager.subscribe() with this service."""
        key, p256dh, auth = new_keys()
        sub = FakeSubscription(f"{self.origin}/push/{secrets.token_urlsafe(16)}", p256dh, auth, key)
        with self._lock:
            self._subs[_path_of(sub.endpoint)] = sub
        return sub

    def script(self, endpoint: str, *replies: Reply | int) -> None:
        """Answer the next pushes to `endpoint` with these replies, in order (then 201 again)."""
        with self._lock:
            queue = self._scripts.setdefault(_path_of(endpoint), deque())
            queue.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def delivered_to(self, endpoint: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.endpoint == endpoint]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        """Block until `count` pushes were accepted (not sleeping: a condition the handler notifies)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.deliveries) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self.deliveries)} of {count} pushes arrived")
            return list(self.deliveries)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "accepted": len(self.deliveries),
                "attempts": len(self.attempts),
                "errors": len(self.errors),
                "first_error": self.errors[0] if self.errors else None,
                "last_accepted_at": max((d.at for d in self.deliveries), default=None),
                "max_body": max((d.body_size for d in self.deliveries), default=0),
                "cpu_seconds": _process_cpu_seconds(),
            }

    # --- the checks a push service makes --------------------------------------------------------------------
    def handle_push(self, path: str, headers: dict[str, str], body: bytes) -> tuple[Reply, str | None]:
        """Check one push; returns the reply and an error (None when the request itself was valid)."""
        with self._lock:
            sub = self._subs.get(path)
            script = self._scripts.get(path)
            scripted = script.popleft() if script else None
        if sub is None and not self.accept_any:
            return Reply(404), None
        endpoint = f"{self.origin}{path}"
        try:
            claims = self._check_vapid(headers.get("authorization", ""), endpoint)
            ttl, urgency = self._check_headers(headers, body)
            plaintext = self._decrypt(sub, body) if (self.decrypt and sub is not None) else None
        except _Rejected as rejected:
            return Reply(rejected.status), str(rejected)
        reply = scripted or Reply(201)
        record = Delivery(endpoint=endpoint, status=reply.status, headers=headers, ttl=ttl, urgency=urgency,
                          topic=headers.get("topic"), claims=claims, body_size=len(body), plaintext=plaintext,
                          at=time.time())
        with self._changed:
            self.attempts.append(record)
            if reply.status == 201:
                self.deliveries.append(record)
            self._changed.notify_all()
        return reply, None

    def _check_vapid(self, authorization: str, endpoint: str) -> dict[str, Any]:
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            raise _Rejected(401, "Authorization is not 'vapid t=..., k=...'")
        parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        token, key = parts.get("t", ""), parts.get("k", "")
        if key != self.vapid_public_key:
            raise _Rejected(403, "k= is not the application server key")
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(b64url_decode(header_b64))
            claims = json.loads(b64url_decode(claims_b64))
            signature = b64url_decode(signature_b64)
        except ValueError as exc:
            raise _Rejected(401, f"malformed JWT: {exc}") from exc
        if header.get("alg") != "ES256" or len(signature) != 64:
            raise _Rejected(401, "JWT is not ES256")
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        try:
            self._vapid_key.verify(encode_dss_signature(r, s), f"{header_b64}.{claims_b64}".encode(),
                                   ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise _Rejected(403, "bad JWT signature") from exc
        origin = endpoint.split("/push/", 1)[0]
        if claims.get("aud") != origin:
            raise _Rejected(403, f"aud {claims.get('aud')!r} is not {origin!r}")
        now = time.time()
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= now or exp > now + 24 * 3600:
            raise _Rejected(403, "exp is not within the next 24 hours")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise _Rejected(403, "sub missing")
        return claims

    def _check_headers(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        try:
            ttl = int(headers.get("ttl", ""))
        except ValueError as exc:
            raise _Rejected(400, "TTL header missing") from exc
        if ttl <= 0:
            raise _Rejected(400, "TTL must be above zero (0 drops the push when the device is offline)")
        urgency = headers.get("urgency", "")
        if urgency not in URGENCIES:
            raise _Rejected(400, f"Urgency header missing or invalid: {urgency!r}")
        if len(body) > MAX_BODY:
            raise _Rejected(413, f"body {len(body)} bytes exceeds {MAX_BODY}")
        if headers.get("content-encoding") != "aes128gcm":
            raise _Rejected(400, "Content-Encoding is not aes128gcm")
        topic = headers.get("topic")
        if topic is not None and (len(topic) > 32 or not all(c.isalnum() or c in "-_" for c in topic)):
            raise _Rejected(400, "Topic must be up to 32 base64url characters")
        return ttl, urgency

    def _decrypt(self, sub: FakeSubscription, body: bytes) -> bytes:
        try:
            return bytes(http_ece.decrypt(body, private_key=sub.private_key, auth_secret=b64url_decode(sub.auth),
                                          version="aes128gcm"))
        except Exception as exc:
            raise _Rejected(400, f"body does not decrypt: {exc}") from exc


def _process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _path_of(endpoint: str) -> str:
    return "/push/" + endpoint.split("/push/", 1)[1]


class _Handler(BaseHTTPRequestHandler):
    fake: FakePushService
    protocol_version = "HTTP/1.1"  # keep-alive, as real push services

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not self.path.startswith("/push/"):
            self._answer(Reply(404))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply, error = self.fake.handle_push(self.path, headers, body)
        if error is not None:
            with self.fake._changed:
                self.fake.errors.append(error)
                self.fake._changed.notify_all()
        self._answer(reply)

    def do_GET(self) -> None:
        if self.path == "/_stats":
            payload = json.dumps(self.fake.stats()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self._answer(Reply(404))

    def _answer(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextmanager
def running(vapid_public_key: str, **options: Any) -> Iterator[FakePushService]:
    service = FakePushService(vapid_public_key=vapid_public_key, **options).start()
    try:
        yield service
    finally:
        service.stop()


def serve_main(argv: list[str] | None = None) -> None:
    """`python -m tests.alerts.fake_push KEY`: serve until killed; prints READY_PREFIX + origin when ready."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("vapid_public_key")
    parser.add_argument("--accept-any", action="store_true", help="accept any /push/<token> endpoint")
    parser.add_argument("--no-decrypt", action="store_true", help="check headers and VAPID only")
    args = parser.parse_args(argv)
    service = FakePushService(vapid_public_key=args.vapid_public_key, accept_any=args.accept_any,
                              decrypt=not args.no_decrypt).start()
    print(f"{READY_PREFIX}{service.origin}", flush=True)
    threading.Event().wait()


READY_PREFIX = "FAKE PUSH READY "

if __name__ == "__main__":
    serve_main()
