"""Python client for the NTARS hub (protocol v1, docs/protocol.md): asyncio + websockets.

    client = await HubClient.sign_in("https://ntars.example", "bob@books.example", password)
    await client.connect()
    ack = await client.send(group_id, envelope_bytes)      # retried with the same client_id until acked
    async for frame in client.messages():                   # `message` and `retracted` frames, in seq order
        ...

The client reconnects by itself (backoff with jitter), resumes from the last seq it saw per group, and
re-sends every unacknowledged send with its original client_id, so nothing is lost or stored twice.
It imports nothing from Django: bots, the benchmark and the warden tools run it anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import http.cookiejar
import json
import logging
import random
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from chat.protocol import CLOSE_REVOKED, VERSION, envelope_encode

logger = logging.getLogger(__name__)

EVENT_FRAMES = frozenset({"keys.changed", "epoch.rotated", "alert", "report_status"})
# Retryable refusals that a resend of the same bytes cannot fix: the caller re-encrypts (chat.e2ee_client does).
NEEDS_NEW_ENVELOPE = frozenset({"stale_epoch", "rotation_required"})

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken"\s+value="([^"]+)"|value="([^"]+)"\s+name="csrfmiddlewaretoken"')


class HubError(Exception):
    """The hub refused something (`code` is the protocol's stable error code)."""

    def __init__(self, code: str, detail: str = "", *, retryable: bool = False) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.retryable = retryable


class HubSignInError(HubError):
    pass


class HubClosed(HubError):
    """The client is closed, or the server revoked the session (no reconnecting from that)."""


@dataclass(frozen=True)
class Ack:
    client_id: str
    group: int
    seq: int
    server_time: str
    duplicate: bool


@dataclass
class _Pending:
    frame: dict[str, Any]
    future: asyncio.Future[Ack]
    retry: bool
    attempts: int = 0


@dataclass
class _State:
    groups: dict[int, str] = field(default_factory=dict)
    presence: dict[int, list[int]] = field(default_factory=dict)


def _form_token(page: str, jar: http.cookiejar.CookieJar) -> str:
    match = _CSRF_INPUT.search(page)
    if match:
        return html.unescape(match.group(1) or match.group(2))
    for cookie in jar:
        if cookie.name == "csrftoken" and cookie.value:
            return cookie.value
    raise HubSignInError("sign_in_failed", "no CSRF token on the sign-in page")


def _sign_in_sync(base_url: str, email: str, password: str, totp_code: str | None, timeout: float) -> str:
    """Sign in through allauth's own pages; return the Cookie header of the signed-in session."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def post(url: str, page: str, fields: dict[str, str]) -> tuple[str, str]:
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": _form_token(page, jar), **fields}).encode()
        request = urllib.request.Request(  # noqa: S310 (the caller's own server URL)
            url, data=body, headers={"Referer": url, "Origin": base_url}
        )
        with opener.open(request, timeout=timeout) as response:
            return response.geturl(), response.read().decode("utf-8", "replace")

    login_url = f"{base_url}/accounts/login/"
    try:
        with opener.open(login_url, timeout=timeout) as response:
            page = response.read().decode("utf-8", "replace")
        final_url, page = post(login_url, page, {"login": email, "password": password})
        if urllib.parse.urlsplit(final_url).path.startswith("/accounts/2fa/authenticate"):
            if not totp_code:
                raise HubSignInError("totp_required", "this account needs a two-factor code")
            final_url, page = post(final_url, page, {"code": totp_code})
    except urllib.error.HTTPError as exc:
        raise HubSignInError("sign_in_failed", f"HTTP {exc.code} from the sign-in pages") from None
    except urllib.error.URLError as exc:
        raise HubSignInError("sign_in_failed", f"cannot reach {base_url}: {exc.reason}", retryable=True) from None
    path = urllib.parse.urlsplit(final_url).path
    if path.startswith(("/accounts/login", "/accounts/2fa/authenticate")):
        raise HubSignInError("sign_in_failed", "wrong email, password or code")
    cookies = {cookie.name: cookie.value for cookie in jar if cookie.value is not None}
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


class HubClient:
    """One hub connection that survives reconnects. Create with `sign_in`, then `connect`."""

    def __init__(
        self, base_url: str, *, cookie_header: str, device: str | None = None,
        resume: dict[int, int] | None = None, max_backoff: float = 10.0, open_timeout: float = 10.0,
        max_size: int = 4 * 1024 * 1024,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        scheme = "wss" if self.base_url.startswith("https://") else "ws"
        self.ws_url = f"{scheme}://{self.base_url.split('://', 1)[1]}/ws/"
        self.cookie_header = cookie_header
        self.device = device or f"py-{uuid.uuid4().hex[:12]}"
        self.last_seq: dict[int, int] = dict(resume or {})
        self.user_id: int | None = None
        self.limits: dict[str, float] = {}
        self.state = _State()
        self.connections = 0  # successful (re)connections so far
        self.close_codes: list[int | None] = []
        self.max_backoff = max_backoff
        self.open_timeout = open_timeout
        self.max_size = max_size
        self._ws: ClientConnection | None = None
        self._pending: dict[str, _Pending] = {}
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._closed = False
        self._fatal: HubClosed | None = None
        self._task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.Task[None]] = set()
        # Called with every keys.changed / epoch.rotated / alert / report_status frame (chat.e2ee_client uses it).
        self.on_event: Callable[[dict[str, Any]], None] | None = None

    # --- setting up ------------------------------------------------------------------------------------

    @classmethod
    async def sign_in(
        cls, base_url: str, email: str, password: str, totp_code: str | None = None, **options: Any
    ) -> HubClient:
        """Sign in over HTTP (CSRF, password, optional TOTP stage) and return a client for that session."""
        base_url = base_url.rstrip("/")
        cookie = await asyncio.to_thread(_sign_in_sync, base_url, email, password, totp_code, 30.0)
        return cls(base_url, cookie_header=cookie, **options)

    async def connect(self, *, timeout: float = 30.0) -> None:
        """Open the socket (reconnecting in the background from now on) and wait until it is ready."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        await self.wait_ready(timeout=timeout)

    async def wait_ready(self, *, timeout: float = 30.0) -> None:
        """Wait until the current connection has replayed every group (`ready`)."""
        ready = asyncio.ensure_future(self._ready.wait())
        waiters: set[asyncio.Future[Any]] = {ready}
        if self._task is not None:
            waiters.add(self._task)
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if self._fatal is not None:
                raise self._fatal
            raise TimeoutError("the hub did not become ready")

    @property
    def groups(self) -> dict[int, str]:
        return dict(self.state.groups)

    @property
    def presence(self) -> dict[int, list[int]]:
        return dict(self.state.presence)

    # --- using it ---------------------------------------------------------------------------------------

    async def send(
        self, group: int, envelope: bytes, urgent: bool = False, *, client_id: str | None = None,
        retry: bool = True, timeout: float | None = None,
    ) -> Ack:
        """Send an envelope; with retry, it is re-sent (same client_id) until acked or refused for good.

        Without retry, a retryable refusal or a dropped connection raises HubError(retryable=True).
        """
        frame: dict[str, Any] = {"type": "send", "group": group, "client_id": client_id or str(uuid.uuid4()),
                                 "envelope": envelope_encode(envelope)}
        if urgent:
            frame["urgent"] = True
        return await self._request(frame, retry=retry, timeout=timeout)

    async def retract(self, group: int, seq: int, *, retry: bool = True, timeout: float | None = None) -> Ack:
        """Withdraw a message (yours, or any as a group moderator)."""
        frame = {"type": "retract", "group": group, "seq": seq, "client_id": str(uuid.uuid4())}
        return await self._request(frame, retry=retry, timeout=timeout)

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        """Every `message` and `retracted` frame, once each, in seq order per group, across reconnects."""
        while True:
            frame = await self._queue.get()
            if frame is None:
                self._queue.put_nowait(None)  # let other iterators end too
                return
            yield frame

    async def close(self) -> None:
        self._closed = True
        for timer in list(self._timers):
            timer.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._fail_all(HubClosed("closed", "the client was closed"))
        self._queue.put_nowait(None)

    async def __aenter__(self) -> HubClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- internals --------------------------------------------------------------------------------------

    async def _request(self, frame: dict[str, Any], *, retry: bool, timeout: float | None) -> Ack:
        if self._fatal is not None or self._closed:
            raise self._fatal or HubClosed("closed", "the client was closed")
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        pending = _Pending(frame=frame, future=future, retry=retry)
        self._pending[frame["client_id"]] = pending
        await self._transmit(pending)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            if future.done() or timeout is not None:
                self._pending.pop(frame["client_id"], None)

    async def _transmit(self, pending: _Pending) -> None:
        """Put a pending request on the wire if connected; otherwise the next connection sends it."""
        ws = self._ws
        if ws is None or not self._ready.is_set():
            return
        pending.attempts += 1
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(pending.frame))

    def _fail_all(self, error: HubError) -> None:
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(error)
        self._pending.clear()

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff, 0.2 * 2 ** min(attempt, 10)) * random.uniform(0.5, 1.0)  # noqa: S311

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            code: int | None = None
            try:
                async with websockets.connect(
                    self.ws_url, origin=self.base_url, additional_headers={"Cookie": self.cookie_header},  # type: ignore[arg-type]
                    open_timeout=self.open_timeout, max_size=self.max_size,
                ) as ws:
                    self._ws = ws
                    self.connections += 1
                    with contextlib.suppress(ConnectionClosed):
                        await self._session(ws)
                    code = ws.close_code
                    attempt = 0 if self._ready.is_set() else attempt
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403):
                    self._stop(HubClosed("refused", f"the hub refused the socket (HTTP {exc.response.status_code})"))
                    return
            except (OSError, InvalidHandshake, TimeoutError, HubError, ValueError, KeyError) as exc:
                logger.info("hub connection failed: %s", type(exc).__name__)
            finally:
                self._ws = None
                self._ready.clear()
            self.close_codes.append(code)
            if code == CLOSE_REVOKED:
                self._stop(HubClosed("revoked", "the session was revoked; sign in again"))
                return
            if self._closed:
                return
            # Requests that must not be retried fail now; the others go again on the next connection.
            for key, pending in list(self._pending.items()):
                if not pending.retry and not pending.future.done():
                    pending.future.set_exception(HubError("disconnected", "connection lost before the ack",
                                                          retryable=True))
                    self._pending.pop(key, None)
            await asyncio.sleep(self._backoff(attempt))
            attempt += 1

    def _stop(self, error: HubClosed) -> None:
        self._fatal = error
        self._fail_all(error)
        self._queue.put_nowait(None)

    async def _session(self, ws: ClientConnection) -> None:
        welcome = json.loads(await ws.recv())
        if welcome.get("type") != "welcome":
            raise HubError("bad_frame", "expected welcome")
        self.user_id = welcome["user"]
        self.limits = welcome.get("limits", {})
        hello: dict[str, Any] = {"type": "hello", "v": VERSION, "device": self.device}
        if self.last_seq:
            hello["resume"] = {str(group): seq for group, seq in self.last_seq.items()}
        await ws.send(json.dumps(hello))
        async for raw in ws:
            if isinstance(raw, bytes):
                continue
            await self._handle(json.loads(raw))

    async def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind in ("message", "retracted"):
            group, seq = frame["group"], frame["seq"]
            if seq > self.last_seq.get(group, 0):
                self.last_seq[group] = seq
                self._queue.put_nowait(frame)
        elif kind == "caught_up":
            self.last_seq[frame["group"]] = frame["seq"]
        elif kind == "ready":
            self._ready.set()
            for pending in list(self._pending.values()):
                await self._transmit(pending)
        elif kind == "ack":
            pending = self._pending.pop(frame["client_id"], None)
            if pending is not None and not pending.future.done():
                pending.future.set_result(Ack(client_id=frame["client_id"], group=frame["group"], seq=frame["seq"],
                                              server_time=frame["server_time"], duplicate=frame["duplicate"]))
        elif kind == "error":
            await self._on_error(frame)
        elif kind == "membership":
            if frame["member"]:
                self.state.groups[frame["group"]] = frame.get("name", "")
            else:
                self.state.groups.pop(frame["group"], None)
                self.state.presence.pop(frame["group"], None)
        elif kind == "presence":
            self.state.presence[frame["group"]] = frame["online"]
        elif kind in EVENT_FRAMES and self.on_event is not None:
            self.on_event(frame)

    async def _on_error(self, frame: dict[str, Any]) -> None:
        ref = frame.get("ref")
        pending = self._pending.get(ref) if ref else None
        if pending is None:
            if frame["code"] == "unavailable" and not self._ready.is_set() and self._ws is not None:
                # hello refused while the database is down: ask again shortly on a fresh connection.
                await self._ws.close()
            elif frame["code"] == "unknown_device" and not self._ready.is_set():
                # hello refused for good: this device is not approved; reconnecting would not change that.
                self._closed = True
                self._stop(HubClosed("unknown_device", frame.get("detail", "")))
                if self._ws is not None:
                    await self._ws.close()
            else:
                logger.info("hub error %s: %s", frame["code"], frame.get("detail", ""))
            return
        if frame["retryable"] and pending.retry and frame["code"] not in NEEDS_NEW_ENVELOPE:
            timer = asyncio.ensure_future(self._retry_later(pending))
            self._timers.add(timer)
            timer.add_done_callback(self._timers.discard)
            return
        self._pending.pop(ref, None)  # type: ignore[arg-type]
        if not pending.future.done():
            pending.future.set_exception(HubError(frame["code"], frame.get("detail", ""), retryable=frame["retryable"]))

    async def _retry_later(self, pending: _Pending) -> None:
        await asyncio.sleep(self._backoff(pending.attempts))
        if not pending.future.done():
            await self._transmit(pending)
