"""Helpers for the promote-from-chat tests: a real E2EE message in a group and the proof its reader submits."""

from __future__ import annotations

import base64
from typing import Any

from chat import crypto
from chat.models import Message
from members.models import User
from tests.chat.test_hub_kit import send_as, unseal

TEXT = "Man in a grey hoodie took two bottles of gin from the shelf by the door"


def message_sent(sender: User, reader: User, group_id: int, text: str = TEXT) -> tuple[Message, crypto.Message]:
    """`sender` sends `text`; `reader` decrypts it as their device would: (stored message, what they read)."""
    stored = send_as(sender.pk, group_id, text)
    message = Message.objects.get(group_id=group_id, seq=stored.seq)
    return message, unseal(reader.pk, group_id, bytes(message.envelope))


def proof_of(message: Message, read: crypto.Message) -> dict[str, Any]:
    """The proof exactly as chat-thread.js hands it to the report form (and the form sends it)."""
    return {
        "group": message.group_id,
        "seq": message.seq,
        "body": crypto.b64e(read.body),
        "key_material": crypto.b64e(read.key_material),
        "envelope": base64.b64encode(bytes(message.envelope)).decode("ascii"),
        "franking": {"kid": message.franking_kid, "tag": crypto.b64e(bytes(message.franking_tag)),
                     "server_time": message.franking_time},
    }


def flip_b64url(text: str, at: int) -> str:
    raw = crypto.b64d(text)
    at %= len(raw)
    return crypto.b64e(raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:])


def flip_b64(text: str, at: int) -> str:
    raw = base64.b64decode(text)
    at %= len(raw)
    return base64.b64encode(raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:]).decode("ascii")
