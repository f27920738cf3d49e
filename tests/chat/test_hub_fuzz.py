"""Hypothesis-generated frames against the consumer: each is handled or answered with an error, never a crash."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pytest_django.fixtures import Settings

from tests.cast import Cast
from tests.chat.test_hub_kit import fresh_channel_layer, open_hub  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

TYPES = ["hello", "send", "retract", "ping", "shout", "", "ack", "message"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.uuids().map(str),
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from([1, 2, 3, 4]),
)
structured = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        name: field_values
        for name in ("v", "device", "resume", "group", "client_id", "envelope", "urgent", "seq", "nonce", "extra")
    },
).map(json.dumps)
frames = st.one_of(
    structured,
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=50),
)


@hypothesis_settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(frames, min_size=1, max_size=12))
async def test_it_survives_any_frame(cast: Cast, settings: Settings, batch: list[str | bytes]) -> None:
    settings.HUB_RATE_BURST = 10_000
    settings.HUB_ABUSE_STRIKES = 10_000
    hub = await open_hub(cast.alice, hello=False)
    for item in batch:
        if isinstance(item, bytes):
            await hub.send_raw(data=item)
        else:
            await hub.send_raw(text=item)
    # Every frame got its answer in order; the socket is alive and nothing was an internal failure.
    nonce = uuid.uuid4().hex
    await hub.send({"type": "ping", "nonce": nonce})
    seen: list[dict[str, Any]] = []
    while (frame := await hub.recv_any())["type"] != "pong" or frame.get("nonce") != nonce:
        seen.append(frame)  # recv_any has checked each against its schema
    assert [f for f in seen if f["type"] == "error" and f["code"] == "internal"] == []
    await hub.close()
