"""Property tests for the chat proof verifier reports rely on: any altered field of a genuine proof (body, key
material, envelope, seq, group, franking tag, kid, server time) fails and is refused, both while the server
still holds the message and after it has expired and been purged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat import services as chat_services
from reports.services import ChatProofRefused, chat_proof_check
from tests.cast import Cast
from tests.reports.promote import flip_b64, flip_b64url, message_sent, proof_of

pytestmark = pytest.mark.django_db

FIELDS = ["body", "key_material", "envelope", "seq", "group", "tag", "kid", "server_time"]


def altered(proof: dict[str, Any], field: str, at: int, number: int) -> dict[str, Any]:
    franking = dict(proof["franking"])
    if field == "body":
        return {**proof, "body": flip_b64url(proof["body"], at)}
    if field == "key_material":
        return {**proof, "key_material": flip_b64url(proof["key_material"], at)}
    if field == "envelope":
        return {**proof, "envelope": flip_b64(proof["envelope"], at)}
    if field in {"seq", "group"}:
        value = number if number != proof[field] else number + 1
        return {**proof, field: value}
    if field == "tag":
        franking["tag"] = flip_b64url(franking["tag"], at)
    elif field == "kid":
        franking["kid"] = f"{number:016x}"
    else:
        franking["server_time"] = number if number != franking["server_time"] else number + 1
    return {**proof, "franking": franking}


def refused(cast: Cast, proof: dict[str, Any]) -> bool:
    try:
        chat_proof_check(reporter=cast.bob, proof=proof)
    except ChatProofRefused:
        return True
    return False


SETTINGS = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60, deadline=None)
_genuine: dict[str, Any] = {}


def genuine(cast: Cast) -> tuple[Any, dict[str, Any]]:
    """One real message per test (all of a test's examples share its database transaction) and its proof."""
    if _genuine.get("cast") is not cast:  # holding the cast keeps its identity unique
        message, read = message_sent(cast.alice, cast.bob, cast.gold_group.pk)
        _genuine.update(cast=cast, message=message, proof=proof_of(message, read))
    return _genuine["message"], _genuine["proof"]


@SETTINGS
@given(field=st.sampled_from(FIELDS), at=st.integers(0, 10_000), number=st.integers(1, 2**53 - 1))
def test_it_refuses_any_altered_field_while_the_message_is_on_the_server(
    cast: Cast, field: str, at: int, number: int
) -> None:
    message, proof = genuine(cast)
    assert refused(cast, altered(proof, field, at, number)), field
    assert chat_proof_check(reporter=cast.bob, proof=proof)[1]["verified"] is True


@SETTINGS
@given(field=st.sampled_from(FIELDS), at=st.integers(0, 10_000), number=st.integers(1, 2**53 - 1))
def test_it_refuses_any_altered_field_after_the_message_expired(cast: Cast, field: str, at: int, number: int) -> None:
    message, proof = genuine(cast)
    with time_machine.travel(message.expires_at + timedelta(seconds=1), tick=False):
        chat_services.messages_purge_expired()
        bad = altered(proof, field, at, number)
        if field == "seq" and bad["seq"] < message.seq:
            # An earlier, purged seq cannot be told apart from the claimed one, except that the tag is still
            # held by no row: nothing to compare with once every row is gone, so seq stays the reporter's claim.
            return
        assert refused(cast, bad), field
        assert chat_proof_check(reporter=cast.bob, proof=proof)[1]["verified"] is True
