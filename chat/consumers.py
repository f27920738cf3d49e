"""The street-chat hub socket: a thin adapter between frames and chat services (docs/protocol.md).

Ordering: Channels dispatches one message at a time per consumer, and a per-socket lock also covers the
periodic reconcile task, so frames of one group leave in seq order. Each socket remembers the last seq it
delivered per group: live events at or below it are dropped (duplicates), and a live event beyond the next seq
first fills the gap from the database (events the channel layer dropped, or that overtook each other).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from django.utils import timezone

from alerts.services import broadcast_mark_delivered
from chat import selectors, services
from chat.protocol import (
    CLOSE_PROTOCOL_ABUSE,
    CLOSE_RATE_ABUSE,
    CLOSE_RETRY,
    VERSION,
    ProtocolError,
    envelope_decode,
    error_frame,
    group_channel,
    parse_client_frame,
    timestamp,
)
from chat.selectors import HubGroup
from members.events import user_channel_group
from members.models import User
from members.selectors import user_gate
from members.sessions import CLOSE_REVOKED, session_channel_group

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = CLOSE_REVOKED
DB_DOWN = (OperationalError, InterfaceError)
# Refusals that say the client is broken or abusive; HUB_ABUSE_STRIKES of them within a minute close the socket.
STRIKE_CODES = frozenset({
    "bad_json", "bad_frame", "too_large", "invalid_frame", "unknown_type", "unsupported_version",
    "hello_required", "duplicate_hello", "bad_envelope", "envelope_too_large", "rate_limited",
})
STRIKE_WINDOW_SECONDS = 60.0


def db(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run ORM code in a worker thread (not the single shared one: the pool serves many sockets at once).

    Connections are closed (returned to the pool) inside the call's own context: asgiref runs the function in
    a copied context, where channels' DatabaseSyncToAsync clean-up does not see the connection it used.
    """

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


class TokenBucket:
    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class HubConsumer(AsyncWebsocketConsumer):
    user: User
    control_groups: list[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.control_groups = []
        self.lock = asyncio.Lock()
        self.bucket = TokenBucket(rate=settings.HUB_RATE_PER_SECOND, burst=settings.HUB_RATE_BURST)
        self.strikes: deque[float] = deque()
        self.device = ""
        self.helloed = False
        self.closing = False
        # Not `self.groups`: Channels' base class discards every name in `groups` on disconnect.
        self.hub_groups: dict[int, HubGroup] = {}
        self.membership_at = 0.0
        self.last: dict[int, int] = {}  # group -> last seq delivered on this socket
        self.ticker: asyncio.Task[None] | None = None
        self.cleaned = False
        self.present = False

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Exception as exc:
            # The channel layer (Redis) failed under us: the client reconnects and resumes from its last seq.
            logger.warning("hub socket ended by %s; closing with %s", type(exc).__name__, CLOSE_RETRY)
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": CLOSE_RETRY})
        finally:
            await self._cleanup()

    async def connect(self) -> None:
        user = self.scope.get("user")
        session = self.scope.get("session")
        if user is None or not user.is_authenticated or session is None or not session.session_key:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        try:
            # Subscribe to revocations before the last check, so a revocation in between is not missed.
            self.control_groups = [user_channel_group(user.pk), session_channel_group(session.session_key)]
            for group in self.control_groups:
                await self.channel_layer.group_add(group, self.channel_name)
            gate = await db(self._gate)()
        except Exception as exc:
            logger.warning("hub connect failed: %s", type(exc).__name__)
            await self.accept()
            await self.close(code=CLOSE_RETRY)
            return
        if gate is not None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.accept()
        await self._emit({
            "type": "welcome", "v": VERSION, "user": user.pk, "server_time": timestamp_now(),
            "limits": {
                "max_frame_bytes": settings.HUB_MAX_FRAME_BYTES,
                "max_envelope_bytes": settings.HUB_MAX_ENVELOPE_BYTES,
                "rate_per_second": settings.HUB_RATE_PER_SECOND,
                "rate_burst": settings.HUB_RATE_BURST,
                "max_groups": settings.HUB_MAX_GROUPS,
                "replay_limit": settings.HUB_REPLAY_LIMIT,
            },
        })
        self.ticker = asyncio.ensure_future(self._tick_forever())

    def _gate(self) -> str | None:
        fresh = User.objects.select_related("business").filter(pk=self.user.pk).first()
        if fresh is None:
            return "gone"
        session_key = self.scope["session"].session_key
        if not selectors.session_is_live(session_key=session_key, user_id=fresh.pk):
            return "session_expired"  # e.g. past the absolute limit, which only the HTTP middleware enforced
        return user_gate(user=fresh)

    async def disconnect(self, code: int) -> None:
        await self._cleanup()

    async def _cleanup(self) -> None:
        if self.cleaned:
            return
        self.cleaned = True
        self.closing = True
        if self.ticker is not None:
            self.ticker.cancel()
        layer = getattr(self, "channel_layer", None)
        if layer is not None:
            for name in [*self.control_groups, *(group_channel(g) for g in self.hub_groups)]:
                with contextlib.suppress(Exception):
                    await layer.group_discard(name, self.channel_name)
        if self.present:
            try:
                await db(services.presence_leave)(channel_name=self.channel_name)
            except Exception as exc:
                logger.warning("presence leave failed: %s (the row goes stale)", type(exc).__name__)

    async def _close(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            await self.close(code=code)

    # --- frames from the client ----------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        async with self.lock:
            if self.closing:
                return
            ref: str | None = None
            try:
                try:
                    frame = parse_client_frame(text_data, max_bytes=settings.HUB_MAX_FRAME_BYTES)
                except ProtocolError as exc:
                    await self._refuse(exc)
                    return
                ref = frame.get("client_id")
                if not self.bucket.take():
                    await self._refuse(ProtocolError("rate_limited", "slow down and retry", ref=ref))
                    return
                handler = getattr(self, f"_frame_{frame['type']}")
                await handler(frame)
            except ProtocolError as exc:
                await self._refuse(exc)
            except Exception as exc:
                # Never let one frame take the socket (or its valid neighbours) down; never log frame content.
                logger.error("hub frame failed: %s", type(exc).__name__)
                await self._emit(error_frame("internal", "the hub could not handle this frame; retry", ref=ref))

    async def _refuse(self, exc: ProtocolError) -> None:
        await self._emit(exc.frame())
        if exc.code not in STRIKE_CODES:
            return
        now = time.monotonic()
        self.strikes.append(now)
        while self.strikes and now - self.strikes[0] > STRIKE_WINDOW_SECONDS:
            self.strikes.popleft()
        if len(self.strikes) >= settings.HUB_ABUSE_STRIKES:
            logger.warning("hub socket of user %s closed for abuse (%s)", self.user.pk, exc.code)
            await self._close(CLOSE_RATE_ABUSE if exc.code == "rate_limited" else CLOSE_PROTOCOL_ABUSE)

    async def _frame_ping(self, frame: dict[str, Any]) -> None:
        pong = {"type": "pong", "server_time": timestamp_now()}
        if "nonce" in frame:
            pong["nonce"] = frame["nonce"]
        await self._emit(pong)

    async def _frame_hello(self, frame: dict[str, Any]) -> None:
        if self.helloed:
            raise ProtocolError("duplicate_hello", "hello is sent once per socket")
        if frame["v"] != VERSION:
            raise ProtocolError("unsupported_version", f"this hub speaks protocol v{VERSION}")
        try:
            access = await db(selectors.hub_access_of_user)(user_id=self.user.pk)
        except DB_DOWN:
            raise ProtocolError("unavailable", "the hub cannot reach its database; retry hello") from None
        if access.gate is not None:
            await self._revoke(access.gate)
            return
        device = frame.get("device", "")
        if device:
            try:
                usable = await db(selectors.device_usable)(user_id=self.user.pk, device_id=device)
            except DB_DOWN:
                raise ProtocolError("unavailable", "the hub cannot reach its database; retry hello") from None
            if not usable:
                raise ProtocolError("unknown_device", "this device is not approved (or was revoked): register it, "
                                    "get it approved, then say hello again")
        self.device = device
        self.helloed = True
        self.hub_groups = access.groups
        self.membership_at = time.monotonic()
        resume = {int(group): seq for group, seq in frame.get("resume", {}).items()}
        # Subscribe to every live stream FIRST, then replay: an event committed meanwhile is either in the
        # replay or queued live (and dropped there as a duplicate), never in neither.
        if not await self._subscribe(list(self.hub_groups)):
            return
        for group_id in sorted(self.hub_groups):
            await self._sync_group(self.hub_groups[group_id], resume.get(group_id, 0))
        try:
            await db(services.presence_join)(channel_name=self.channel_name, user_id=self.user.pk, device=self.device)
            self.present = True
            for group_id in sorted(self.hub_groups):
                online = await db(selectors.presence_online)(group_id=group_id)
                await self._emit({"type": "presence", "group": group_id, "online": online})
        except DB_DOWN as exc:
            logger.warning("presence unavailable: %s", type(exc).__name__)
        await self._emit({"type": "ready", "groups": sorted(self.hub_groups), "truncated": access.truncated})

    async def _frame_send(self, frame: dict[str, Any]) -> None:
        ref = frame["client_id"]
        if not self.helloed:
            raise ProtocolError("hello_required", "send hello first", ref=ref)
        envelope = envelope_decode(frame["envelope"], max_bytes=settings.HUB_MAX_ENVELOPE_BYTES, ref=ref)
        await self._require_member(frame["group"], ref=ref)
        try:
            stored = await db(services.message_send)(
                user_id=self.user.pk, group_id=frame["group"], client_id=uuid.UUID(ref), envelope=envelope,
                urgent=frame.get("urgent", False), device=self.device,
            )
        except DB_DOWN:
            raise ProtocolError("unavailable", "not stored: the hub cannot reach its database; retry", ref=ref) from None
        await self._emit(stored.ack_frame(ref))

    async def _frame_retract(self, frame: dict[str, Any]) -> None:
        ref = frame.get("client_id")
        if not self.helloed:
            raise ProtocolError("hello_required", "send hello first", ref=ref)
        await self._require_member(frame["group"], ref=ref)
        try:
            stored = await db(services.message_retract)(
                user_id=self.user.pk, group_id=frame["group"], seq=frame["seq"],
                client_id=uuid.UUID(ref) if ref else None,
            )
        except DB_DOWN:
            raise ProtocolError("unavailable", "not retracted: the hub cannot reach its database; retry", ref=ref) from None
        if ref:
            await self._emit(stored.ack_frame(ref))

    async def _require_member(self, group_id: int, *, ref: str | None) -> None:
        await self._refresh_membership()
        if self.closing:
            raise ProtocolError("not_member", "this socket is closing", ref=ref)
        if group_id not in self.hub_groups:
            raise ProtocolError("not_member", "you are not a member of this group", ref=ref)

    # --- the ordered stream ------------------------------------------------------------------------------

    async def _emit(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, separators=(",", ":")))

    async def _replay(self, group_id: int, after: int, before: int | None = None) -> int:
        """Deliver stored events after `after` (and before `before`) in order; return the last seq delivered."""
        limit = settings.HUB_REPLAY_LIMIT
        while True:
            frames = await db(selectors.stream_frames_after)(
                group_id=group_id, after_seq=after, before_seq=before, limit=limit
            )
            for frame in frames:
                await self._emit(frame)
                after = frame["seq"]
                self.last[group_id] = max(self.last.get(group_id, 0), after)
            if len(frames) < limit:
                return after

    async def _sync_group(self, group: HubGroup, resume: int) -> None:
        """Announce a group, replay what the client missed, and mark where live delivery continues."""
        await self._emit({"type": "membership", "group": group.id, "member": True, "name": group.name,
                          "retention_seconds": group.retention_seconds})
        try:
            # Every seq up to the counter is committed (writers hold the counter row until commit), so after
            # the replay below, anything not delivered up to it has expired.
            counter = await db(selectors.group_last_seq)(group_id=group.id)
            delivered = await self._replay(group.id, min(resume, counter))
        except DB_DOWN:
            # Resume from the client's point; the reconcile task fills in once the database is back.
            self.last[group.id] = resume
            return
        self.last[group.id] = max(delivered, counter)
        await self._emit({"type": "caught_up", "group": group.id, "seq": self.last[group.id]})

    async def _live(self, frame: dict[str, Any]) -> None:
        async with self.lock:
            group_id = frame["group"]
            if self.closing or group_id not in self.last:
                return
            await self._refresh_membership()
            if self.closing or group_id not in self.hub_groups:
                return
            seq = frame["seq"]
            last = self.last[group_id]
            if seq <= last:
                return
            if seq > last + 1:
                try:
                    await self._replay(group_id, last, before=seq)
                except DB_DOWN:
                    return  # not delivered: the reconcile task fetches it, in order, later
            await self._emit(frame)
            self.last[group_id] = seq

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self._live(event["frame"])

    async def chat_retracted(self, event: dict[str, Any]) -> None:
        await self._live(event["frame"])

    async def _relay_to_members(self, group_id: int, frame: dict[str, Any]) -> None:
        """Pass a group's event on, if this socket carries the group (membership re-checked first)."""
        async with self.lock:
            if self.closing or group_id not in self.last:
                return
            await self._refresh_membership()
            if not self.closing and group_id in self.hub_groups:
                await self._emit(frame)

    async def chat_presence(self, event: dict[str, Any]) -> None:
        await self._relay_to_members(event["group"], {"type": "presence", "group": event["group"],
                                                      "online": event["online"]})

    async def keys_changed(self, event: dict[str, Any]) -> None:
        """A member's devices changed: clients re-read the directory (and warn) before their next message."""
        await self._relay_to_members(event["group"], {"type": "keys.changed", "group": event["group"],
                                                      "user": event["user"]})

    async def epoch_rotated(self, event: dict[str, Any]) -> None:
        await self._relay_to_members(event["group"], {"type": "epoch.rotated", "group": event["group"],
                                                      "epoch": event["epoch"]})

    # --- other apps' events for this user (on user.<id>) --------------------------------------------------

    async def alert_broadcast(self, event: dict[str, Any]) -> None:
        """A warden's broadcast: show it on this socket, then record that it reached the person."""
        banner = event.get("broadcast") or {}
        async with self.lock:
            if self.closing:
                return
            await self._emit({"type": "alert", "broadcast": banner})
        try:
            await db(broadcast_mark_delivered)(user_id=self.user.pk, broadcast_id=int(banner["id"]))
        except Exception as exc:
            logger.warning("broadcast delivery not recorded: %s", type(exc).__name__)

    async def report_status(self, event: dict[str, Any]) -> None:
        """A report this person filed changed status."""
        async with self.lock:
            if not self.closing:
                await self._emit({"type": "report_status", "report": event["report"], "status": event["status"],
                                  "label": event["label"], "at": event["at"]})

    # --- membership, revocation, reconcile --------------------------------------------------------------

    async def _refresh_membership(self, *, force: bool = False) -> None:
        """Re-read the user's groups when the cached set is older than HUB_MEMBERSHIP_TTL_SECONDS (or forced)."""
        if not self.helloed or self.closing:
            return
        if not force and time.monotonic() - self.membership_at < settings.HUB_MEMBERSHIP_TTL_SECONDS:
            return
        try:
            access = await db(selectors.hub_access_of_user)(user_id=self.user.pk)
        except DB_DOWN as exc:
            logger.warning("membership refresh failed: %s", type(exc).__name__)
            return
        self.membership_at = time.monotonic()
        if access.gate is not None:
            await self._revoke(access.gate)
            return
        for group_id in sorted(set(self.hub_groups) - set(access.groups)):
            await self._drop_group(group_id)
        added = sorted(set(access.groups) - set(self.hub_groups))
        self.hub_groups = dict(access.groups)
        if not await self._subscribe(added):
            return
        for group_id in added:
            await self._sync_group(self.hub_groups[group_id], 0)

    async def _subscribe(self, group_ids: list[int]) -> bool:
        """Join the groups' live streams; if the channel layer fails, close so the client reconnects."""
        try:
            for group_id in group_ids:
                await self.channel_layer.group_add(group_channel(group_id), self.channel_name)
        except Exception as exc:
            logger.warning("hub subscribe failed: %s", type(exc).__name__)
            await self._close(CLOSE_RETRY)
            return False
        return True

    async def _drop_group(self, group_id: int) -> None:
        self.hub_groups.pop(group_id, None)
        self.last.pop(group_id, None)
        with contextlib.suppress(Exception):
            await self.channel_layer.group_discard(group_channel(group_id), self.channel_name)
        await self._emit({"type": "membership", "group": group_id, "member": False})

    async def membership_changed(self, event: dict[str, Any]) -> None:
        """members services tell user.<id> when a group was joined or left: re-read at once."""
        async with self.lock:
            if self.closing or not self.helloed:
                return
            before = time.monotonic()
            await self._refresh_membership(force=True)
            group_id = event.get("group")
            if self.membership_at < before and not event.get("member") and group_id in self.hub_groups:
                await self._drop_group(group_id)  # database unreachable: trust the removal, fail closed

    async def _revoke(self, reason: str) -> None:
        await self._emit({"type": "revoked", "reason": reason})
        await self._close(CLOSE_REVOKED)

    async def session_revoked(self, event: dict[str, Any]) -> None:
        async with self.lock:
            if not self.closing:
                await self._revoke(event.get("reason", "revoked"))

    async def hub_ping(self, event: dict[str, Any]) -> None:
        """Answer a ping sent through the channel layer: once it is answered, every earlier event was handled."""
        async with self.lock:
            if not self.closing:
                await self._emit({"type": "pong", "nonce": str(event.get("nonce", ""))[:64],
                                  "server_time": timestamp_now()})

    async def hub_reconcile(self, event: dict[str, Any]) -> None:
        """Reconcile now (the periodic task does the same); operators and tests can trigger it."""
        await self._reconcile()

    async def _session_check(self) -> bool:
        """Whether the socket's sign-in session is still live (idle and absolute limits); if not, close 4401."""
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        try:
            live = bool(key) and await db(selectors.session_is_live)(session_key=key, user_id=self.user.pk)
        except DB_DOWN:
            return True  # cannot tell now; the next reconcile asks again
        if not live:
            async with self.lock:
                if not self.closing:
                    await self._revoke("session_expired")
        return live

    async def _reconcile(self) -> None:
        """Check the session, re-subscribe (subscriptions vanish when Redis restarts), re-read membership, and
        fetch anything missed."""
        if self.closing or not await self._session_check():
            return
        async with self.lock:
            if self.closing or not self.helloed:
                return
            await self._refresh_membership(force=True)
            for group_id in self.hub_groups:
                await self.channel_layer.group_add(group_channel(group_id), self.channel_name)
            for name in self.control_groups:
                await self.channel_layer.group_add(name, self.channel_name)
            try:
                for group_id in sorted(self.last):
                    await self._replay(group_id, self.last[group_id])
                await db(services.presence_touch)(channel_name=self.channel_name, user_id=self.user.pk,
                                                 device=self.device)
                self.present = True
            except DB_DOWN as exc:
                logger.warning("reconcile could not reach the database: %s", type(exc).__name__)

    async def _tick_forever(self) -> None:
        while not self.closing:
            await asyncio.sleep(settings.HUB_RECONCILE_SECONDS)
            try:
                await self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("hub reconcile failed (%s): closing so the client reconnects", type(exc).__name__)
                with contextlib.suppress(Exception):
                    await self._close(CLOSE_RETRY)
                return


def timestamp_now() -> str:
    return timestamp(timezone.now())
