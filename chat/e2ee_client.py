"""Python E2EE chat client: chat.client.HubClient (the socket) + chat.crypto (format v1) + the chat JSON API.

    client = await E2EEClient.sign_in("https://ntars.example", "bob@books.example", password)
    await client.register()                       # this device's keys into the directory ("approved"/"pending")
    await client.connect()                        # the hub socket, hello with this device
    await client.send_text(group_id, "seen him")  # rotates the group key first when the server says so
    async for received in client.received():      # every message frame, verified and decrypted (or why not)
        print(received.sender_name, received.text)

Private keys stay in this process (DeviceKeys; PKCS8 via keys.to_pkcs8() to keep them). Epoch keys are kept in
memory per group. Like chat.client it imports nothing from Django, so bots and tools can run it anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chat import crypto
from chat.client import NEEDS_NEW_ENVELOPE, Ack, HubClient, HubError
from chat.crypto import E2EEError, b64d, b64e

logger = logging.getLogger(__name__)

MAX_ROTATION_TRIES = 3
MAX_SEND_TRIES = 4
# Re-read the group's key state before sending at most this often (as the browser does): members joining
# need the next sender to rotate, which the server does not refuse sends for. Removals and rotations by
# others are told over the socket (keys.changed / epoch.rotated) or refused by the hub, so nothing waits on it.
EPOCH_RECHECK_SECONDS = 15.0


class ApiError(Exception):
    """The chat API refused a request: HTTP `status`, stable `code` ({"error": code, "detail": ...})."""

    def __init__(self, status: int, code: str, detail: str = "", body: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}" if detail else f"{status} {code}")
        self.status = status
        self.code = code
        self.detail = detail
        self.body = dict(body or {})


@dataclass(frozen=True)
class Received:
    """One `message` frame of a group's stream: decrypted and verified (`message`), or why not (`error`)."""

    frame: dict[str, Any]
    message: crypto.Message | None = None
    error: str | None = None

    @property
    def group(self) -> int:
        return int(self.frame["group"])

    @property
    def seq(self) -> int:
        return int(self.frame["seq"])

    @property
    def text(self) -> str | None:
        return self.message.text if self.message is not None else None

    @property
    def sender_name(self) -> str | None:
        sender = self.frame.get("sender")
        return sender["name"] if sender else None


@dataclass
class _GroupKeys:
    epoch_keys: dict[int, bytes] = field(default_factory=dict)
    current: int = 0
    needs_rotation: bool = True
    max_epoch: int = 0  # highest epoch accepted in this group's stream (anything older is a rollback)
    seen: set[str] = field(default_factory=set)
    directory: dict[int, dict[str, Any]] | None = None
    directory_at: float = 0.0
    epochs_at: float = 0.0  # when the server's epoch state was last read


def _csrf_from(cookie_header: str) -> str:
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "csrftoken":
            return value
    return ""


class E2EEClient:
    """One device of one member: its keys, its registration, and end-to-end encrypted chat over the hub."""

    def __init__(self, hub: HubClient, *, keys: crypto.DeviceKeys, device_id: str, timeout: float = 30.0) -> None:
        self.hub = hub
        self.keys = keys
        self.device_id = device_id
        self.timeout = timeout
        self.status = "new"
        self.groups: dict[int, _GroupKeys] = {}
        hub.device = device_id
        hub.on_event = self._on_event

    @classmethod
    async def sign_in(
        cls, base_url: str, email: str, password: str, totp_code: str | None = None, *,
        keys: crypto.DeviceKeys | None = None, device_id: str | None = None, **hub_options: Any,
    ) -> E2EEClient:
        """Sign in (as chat.client.HubClient.sign_in) with these device keys, or new ones."""
        device_id = device_id or str(uuid.uuid4())
        hub = await HubClient.sign_in(base_url, email, password, totp_code, device=device_id, **hub_options)
        return cls(hub, keys=keys or crypto.DeviceKeys.generate(), device_id=device_id)

    @property
    def user_id(self) -> int | None:
        return self.hub.user_id

    @property
    def fingerprint(self) -> str:
        return crypto.fingerprint(self.keys.signing_public, self.keys.agreement_public)

    # --- the chat JSON API ------------------------------------------------------------------------------------

    def _api_sync(self, method: str, path: str, payload: Any, body: bytes | None, content_type: str | None) -> Any:
        headers = {"Cookie": self.hub.cookie_header, "Origin": self.hub.base_url, "Accept": "application/json"}
        if method != "GET":
            headers["X-CSRFToken"] = _csrf_from(self.hub.cookie_header)
            headers["Referer"] = f"{self.hub.base_url}/chat/"
        data = body
        if payload is not None:
            data = json.dumps(payload).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(  # noqa: S310 (the caller's own server URL)
            f"{self.hub.base_url}/chat/api/{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
                if response.headers.get_content_type() == "application/json":
                    return json.loads(raw)
                return raw
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = {}
            if not isinstance(answer, dict):
                answer = {}
            raise ApiError(exc.code, str(answer.get("error", f"http_{exc.code}")), str(answer.get("detail", "")),
                           answer) from None

    async def api(self, method: str, path: str, *, json_body: Any = None, body: bytes | None = None,
                  content_type: str | None = None) -> Any:
        """Call /chat/api/<path> with this session (CSRF header on writes); JSON back, or bytes."""
        return await asyncio.to_thread(self._api_sync, method, path, json_body, body, content_type)

    # --- this device --------------------------------------------------------------------------------------

    async def register(self, label: str = "Python client") -> str:
        """Put this device's public keys in the directory; returns "approved" (first device) or "pending"."""
        answer = await self.api("POST", "devices", json_body={
            "device_id": self.device_id, "label": label, "sign_pub": b64e(self.keys.signing_public),
            "dh_pub": b64e(self.keys.agreement_public),
        })
        self.status = answer["status"]
        return self.status

    async def devices(self) -> list[dict[str, Any]]:
        """This user's devices (all statuses)."""
        return list((await self.api("GET", "devices"))["devices"])

    async def approve(self, device_id: str) -> dict[str, Any]:
        """Approve another (pending) device of this user, signing its keys with this device."""
        pending = next((d for d in await self.devices() if d["device_id"] == device_id), None)
        if pending is None:
            raise ApiError(404, "not_found", "no such device of yours")
        user = self.user_id if self.user_id is not None else await self._whoami()
        signature = crypto.sign_device_approval(keys=self.keys, user=user, device=device_id,
                                                sign_pub=pending["sign_pub"], dh_pub=pending["dh_pub"])
        return dict(await self.api("POST", f"devices/{device_id}/approve",
                                   json_body={"approver_device": self.device_id, "signature": signature}))

    async def revoke(self, device_id: str | None = None) -> dict[str, Any]:
        """Revoke one of this user's devices (this one by default)."""
        return dict(await self.api("POST", f"devices/{device_id or self.device_id}/revoke", json_body={}))

    async def _whoami(self) -> int:
        await self.connect()
        assert self.hub.user_id is not None
        return self.hub.user_id

    # --- the socket -------------------------------------------------------------------------------------------

    async def connect(self, *, timeout: float = 30.0) -> None:
        await self.hub.connect(timeout=timeout)

    async def close(self) -> None:
        await self.hub.close()

    async def __aenter__(self) -> E2EEClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _on_event(self, frame: dict[str, Any]) -> None:
        group = self.groups.get(frame.get("group", 0))
        if group is None:
            return
        if frame["type"] == "keys.changed":
            group.directory = None
            group.needs_rotation = True
        elif frame["type"] == "epoch.rotated":
            group.needs_rotation = True  # re-read before the next send

    def _group(self, group: int) -> _GroupKeys:
        return self.groups.setdefault(group, _GroupKeys())

    # --- directory and epochs -----------------------------------------------------------------------------

    async def directory(self, group: int, *, refresh: bool = False) -> dict[int, dict[str, Any]]:
        """The group's members and their approved devices: {user id: {user, name, business, devices}}."""
        state = self._group(group)
        if state.directory is None or refresh:
            answer = await self.api("GET", f"groups/{group}/directory")
            state.directory = {member["user"]: member for member in answer["members"]}
            state.directory_at = time.monotonic()
        return state.directory

    async def _device_key(self, group: int, sender: int, device: str) -> bytes | None:
        def find(members: Mapping[int, dict[str, Any]]) -> bytes | None:
            for entry in members.get(sender, {}).get("devices", []):
                if entry["device_id"] == device:
                    return b64d(entry["sign_pub"], crypto.KEY_BYTES)
            return None

        found = find(await self.directory(group))
        if found is None and time.monotonic() - self._group(group).directory_at > 1.0:
            found = find(await self.directory(group, refresh=True))
        return found

    async def refresh_epochs(self, group: int) -> _GroupKeys:
        """Fetch the group's epochs and open every wrap for this device that is not open yet."""
        state = self._group(group)
        answer = await self.api("GET", f"groups/{group}/epochs?device={self.device_id}")
        if answer["current"] < state.current:
            raise E2EEError(crypto.CODE_ROLLED_BACK_EPOCH, "the server offers an older epoch than it did")
        for entry in answer["epochs"]:
            if entry["wrap"] is None or entry["epoch"] in state.epoch_keys:
                continue
            rotation = entry["rotation"]
            data = rotation.encode() if isinstance(rotation, str) else crypto.canonical_json(rotation)
            by_device = crypto.read_rotation(data).by_device
            signing = await self._any_device_key(group, by_device)
            try:
                _, key = crypto.open_rotation(data, device=self.device_id, keys=self.keys, group=group, min_epoch=1,
                                              device_key=lambda _device, signing=signing: signing)
            except E2EEError as exc:
                # e.g. the rotating device was revoked since: that epoch stays unreadable here, the rest is fine.
                logger.info("epoch %s of group %s refused: %s", entry["epoch"], group, exc.code)
                continue
            state.epoch_keys[entry["epoch"]] = key
        state.current = answer["current"]
        state.needs_rotation = bool(answer["needs_rotation"])
        state.epochs_at = time.monotonic()
        return state

    async def _any_device_key(self, group: int, device: str) -> bytes | None:
        for refresh in (False, True):
            for member in (await self.directory(group, refresh=refresh)).values():
                for entry in member["devices"]:
                    if entry["device_id"] == device:
                        return b64d(entry["sign_pub"], crypto.KEY_BYTES)
        return None

    async def rotate(self, group: int) -> int:
        """Make the group's next epoch key, wrapped to every approved member device; returns the new epoch, or
        0 when another device rotated first (its epoch is then fetched)."""
        state = await self.refresh_epochs(group)
        members = await self.directory(group, refresh=True)
        recipients = [(d["device_id"], b64d(d["dh_pub"], crypto.KEY_BYTES))
                      for member in members.values() for d in member["devices"]]
        if self.device_id not in {device for device, _ in recipients}:
            raise E2EEError(crypto.CODE_NOT_RECIPIENT, "this device is not approved for the group")
        epoch = state.current + 1
        rotation, key = crypto.rotate_epoch(signer=self.keys, by_device=self.device_id, group=group, epoch=epoch,
                                            prev_epoch=state.current, recipients=recipients)
        try:
            await self.api("POST", f"groups/{group}/rotations", json_body={"rotation": rotation.decode()})
        except ApiError as exc:
            if exc.status == 409:
                await self.refresh_epochs(group)
                return 0
            raise
        state.epoch_keys[epoch] = key
        state.current = epoch
        state.needs_rotation = False
        return epoch

    async def sending_epoch(self, group: int) -> int:
        """The epoch to send in now: the server's current one, rotated first when it asks for that."""
        state = self._group(group)
        if (state.needs_rotation or state.current not in state.epoch_keys
                or time.monotonic() - state.epochs_at > EPOCH_RECHECK_SECONDS):
            state = await self.refresh_epochs(group)
        for _ in range(MAX_ROTATION_TRIES):
            if not state.needs_rotation and state.current in state.epoch_keys:
                return state.current
            rotated = await self.rotate(group)
            if rotated:
                return rotated
            state = self._group(group)
        raise E2EEError(crypto.CODE_UNKNOWN_EPOCH, "could not agree a group key with the server")

    # --- messages -------------------------------------------------------------------------------------------

    def encrypt(self, group: int, epoch: int, text: str, *, urgent: bool = False,
                attachments: Sequence[Mapping[str, Any]] = ()) -> bytes:
        """Seal a message body to an epoch whose key this client holds."""
        assert self.user_id is not None, "connect first: the hub says who this user is"
        return crypto.encrypt_message(
            keys=self.keys, sender=self.user_id, device=self.device_id, group=group, epoch=epoch,
            epoch_key=self._group(group).epoch_keys[epoch], text=text, sent_at=int(time.time() * 1000),
            attachments=attachments, urgent=urgent,
        )

    async def send_text(self, group: int, text: str, *, urgent: bool = False,
                        attachments: Sequence[Mapping[str, Any]] = ()) -> Ack:
        """Encrypt and send; re-encrypts (after a rotation) when the hub says the epoch moved on."""
        if self.user_id is None:
            await self.connect()
        for attempt in range(MAX_SEND_TRIES):
            epoch = await self.sending_epoch(group)
            envelope = self.encrypt(group, epoch, text, urgent=urgent, attachments=attachments)
            try:
                return await self.hub.send(group, envelope, urgent=urgent, timeout=self.timeout)
            except HubError as exc:
                if exc.code not in NEEDS_NEW_ENVELOPE or attempt == MAX_SEND_TRIES - 1:
                    raise
                self._group(group).needs_rotation = True
        raise AssertionError("unreachable")

    async def decrypt_frame(self, frame: Mapping[str, Any]) -> crypto.Message:
        """Verify and decrypt one `message` frame (E2EEError with a stable code when it must not be shown)."""
        group = int(frame["group"])
        state = self._group(group)
        if not frame.get("envelope"):
            raise E2EEError(crypto.CODE_MALFORMED, "the message was withdrawn")
        data = base64.b64decode(frame["envelope"])
        header = crypto.read_envelope(data).header
        if header["epoch"] not in state.epoch_keys and header["epoch"] >= state.max_epoch:
            with contextlib.suppress(ApiError):  # e.g. no longer a member: then there is no key to be had
                await self.refresh_epochs(group)
        signing = await self._device_key(group, header["sender"], header["device"])
        message = crypto.decrypt_message(
            data, group=group, epoch_keys=state.epoch_keys, min_epoch=state.max_epoch, seen=state.seen,
            device_key=lambda sender, device: signing if (sender, device) == (header["sender"], header["device"])
            else None,
        )
        sender = frame.get("sender")
        if sender is not None and sender.get("id") != header["sender"]:
            raise E2EEError(crypto.CODE_BAD_SIGNATURE, "the server's sender and the signed sender disagree")
        state.max_epoch = max(state.max_epoch, header["epoch"])
        return message

    async def received(self) -> AsyncIterator[Received]:
        """Every message of every group, in seq order, decrypted (tombstones and retractions are skipped)."""
        async for frame in self.hub.messages():
            if frame["type"] != "message" or frame.get("retracted"):
                continue
            try:
                yield Received(frame=frame, message=await self.decrypt_frame(frame))
            except E2EEError as exc:
                yield Received(frame=frame, error=exc.code)

    # --- photos ---------------------------------------------------------------------------------------------

    async def upload(self, group: int, data: bytes, mime: str = "image/jpeg") -> dict[str, Any]:
        """Encrypt and upload an attachment; returns the attachment entry for the message body."""
        blob, key, digest = crypto.encrypt_blob(data)
        answer = await self.api("POST", f"blobs?group={group}", body=blob, content_type="application/octet-stream")
        return {"blob": answer["blob_id"], "key": b64e(key), "mime": mime, "sha256": b64e(digest), "size": len(data)}

    async def download(self, attachment: Mapping[str, Any]) -> bytes:
        """Fetch, check and decrypt an attachment."""
        blob = await self.api("GET", f"blobs/{attachment['blob']}")
        return crypto.decrypt_blob(blob, key=b64d(attachment["key"], crypto.KEY_BYTES),
                                   sha256=b64d(attachment["sha256"], crypto.MAC_BYTES))

    # --- verification -------------------------------------------------------------------------------------

    async def safety_number(self, group: int, user: int) -> str:
        """The safety number between this user's devices and another member's, to compare in person."""
        members = await self.directory(group, refresh=True)
        mine = [(b64d(d["sign_pub"]), b64d(d["dh_pub"])) for d in members.get(self.user_id or 0, {}).get("devices", [])]
        theirs = [(b64d(d["sign_pub"]), b64d(d["dh_pub"])) for d in members.get(user, {}).get("devices", [])]
        return crypto.safety_number(mine or [(self.keys.signing_public, self.keys.agreement_public)], theirs)
