"""Group epoch keys: rotations accepted only from current member devices, for the next epoch, wrapped to exactly
the member devices; when a rotation is needed (or mandatory); sends refused until a removal is rotated away."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from chat import crypto, selectors, services
from chat.models import EpochWrap, GroupEpoch, Message
from chat.services import ChatRefused
from members.models import GroupMember
from members.services import group_member_remove
from tests.cast import Cast
from tests.chat.test_hub_kit import (
    api_client,
    api_get,
    api_post,
    kit_device,
    kit_epoch_key,
    kit_keys,
    register_device,
    rotation_for,
    seal,
    send_as,
    unseal,
)

pytestmark = pytest.mark.django_db


def rotate(client: Any, group: int, rotation: bytes) -> Any:
    return api_post(client, f"groups/{group}/rotations", {"rotation": rotation.decode()})


@pytest.fixture
def devices(cast: Cast) -> dict[str, tuple[str, crypto.DeviceKeys]]:
    """An approved device for each Gold Street member: alice, bob and the warden."""
    out = {}
    for name in ("alice", "bob", "warden"):
        device, keys, response = register_device(api_client(getattr(cast, name)))
        assert response.json()["status"] == "approved"
        out[name] = (device, keys)
    return out


def test_it_accepts_a_rotation_and_hands_each_device_its_wrap(
    cast: Cast, devices: dict[str, tuple[str, crypto.DeviceKeys]], monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(services, "publish_on_commit", lambda group, event: published.append((group, event)))
    alice = api_client(cast.alice)
    gold = cast.gold_group.pk
    assert api_get(alice, f"groups/{gold}/epochs?device={devices['alice'][0]}").json() == {
        "current": 0, "needs_rotation": True, "epochs": []}
    device, keys = devices["alice"]
    rotation, epoch_key = rotation_for(cast.gold_group, signer=keys, by_device=device)
    response = rotate(alice, gold, rotation)
    assert response.status_code == 201 and response.json() == {"epoch": 1}
    assert published == [(f"group.{gold}", {"type": "epoch.rotated", "group": gold, "epoch": 1})]
    for name in ("alice", "bob", "warden"):
        member_device, member_keys = devices[name]
        answer = api_get(api_client(getattr(cast, name)), f"groups/{gold}/epochs?device={member_device}").json()
        assert answer["current"] == 1 and answer["needs_rotation"] is False
        [entry] = answer["epochs"]
        assert entry["rotation"] == rotation.decode() and entry["wrap"]["device"] == member_device
        _, opened = crypto.open_rotation(entry["rotation"].encode(), device=member_device, keys=member_keys,
                                         group=gold, min_epoch=1, device_key=lambda _: keys.signing_public)
        assert opened == epoch_key
    # The rotation can also be sent as the JSON object itself (it is re-encoded canonically).
    second, _ = rotation_for(cast.gold_group, signer=keys, by_device=device)
    record = crypto.parse_canonical(second, max_bytes=crypto.MAX_ROTATION_BYTES)
    assert api_post(alice, f"groups/{gold}/rotations", {"rotation": record}).json() == {"epoch": 2}


def test_it_never_lets_an_epoch_go_backwards(cast: Cast, devices: dict[str, tuple[str, crypto.DeviceKeys]]) -> None:
    alice = api_client(cast.alice)
    gold = cast.gold_group.pk
    device, keys = devices["alice"]
    first, _ = rotation_for(cast.gold_group, signer=keys, by_device=device)
    assert rotate(alice, gold, first).status_code == 201
    second, _ = rotation_for(cast.gold_group, signer=keys, by_device=device)
    assert rotate(alice, gold, second).status_code == 201
    cases = [
        first,  # replayed: epoch 1 again
        rotation_for(cast.gold_group, signer=keys, by_device=device, epoch=2, prev_epoch=1)[0],  # stale
        rotation_for(cast.gold_group, signer=keys, by_device=device, epoch=1, prev_epoch=0)[0],  # backwards
        rotation_for(cast.gold_group, signer=keys, by_device=device, epoch=4, prev_epoch=3)[0],  # skips one
        rotation_for(cast.gold_group, signer=keys, by_device=device, epoch=4, prev_epoch=2)[0],  # not +1
    ]
    for rotation in cases:
        response = rotate(alice, gold, rotation)
        assert response.status_code == 409
        assert response.json()["error"] == "stale_epoch" and response.json()["current"] == 2
    assert list(GroupEpoch.objects.filter(group=cast.gold_group).values_list("epoch", flat=True)) == [1, 2]


def test_it_refuses_wraps_that_are_not_exactly_the_member_devices(
    cast: Cast, devices: dict[str, tuple[str, crypto.DeviceKeys]]
) -> None:
    alice = api_client(cast.alice)
    gold = cast.gold_group.pk
    device, keys = devices["alice"]
    everyone = [(d, k.agreement_public) for d, k in devices.values()]
    pending, pending_keys, _ = register_device(api_client(cast.bob))  # bob's second device, not approved
    charlie, charlie_keys, _ = register_device(api_client(cast.charlie))
    wrong = {
        "missing bob": [r for r in everyone if r[0] != devices["bob"][0]],
        "charlie added": [*everyone, (charlie, charlie_keys.agreement_public)],
        "pending device": [*everyone, (pending, pending_keys.agreement_public)],
        "made-up device": [*everyone, (str(uuid.uuid4()), crypto.DeviceKeys.generate().agreement_public)],
    }
    for name, recipients in wrong.items():
        rotation, _ = rotation_for(cast.gold_group, signer=keys, by_device=device, recipients=recipients)
        response = rotate(alice, gold, rotation)
        assert (response.status_code, response.json()["error"]) == (400, "wrong_recipients"), name
    assert not GroupEpoch.objects.exists()


def test_it_accepts_rotations_only_from_the_callers_approved_member_devices(
    cast: Cast, devices: dict[str, tuple[str, crypto.DeviceKeys]]
) -> None:
    alice = api_client(cast.alice)
    gold = cast.gold_group.pk
    device, keys = devices["alice"]
    bob_device, bob_keys = devices["bob"]
    pending, pending_keys, _ = register_device(alice)
    charlie, charlie_keys, _ = register_device(api_client(cast.charlie))
    forged = crypto.DeviceKeys.generate()
    other_group, _ = crypto.rotate_epoch(signer=keys, by_device=device, group=cast.abington_group.pk, epoch=1,
                                         prev_epoch=0, recipients=[(device, keys.agreement_public)])
    cases: list[tuple[Any, bytes, int, str]] = [
        (alice, rotation_for(cast.gold_group, signer=forged, by_device=device)[0], 400, "bad_signature"),
        (alice, rotation_for(cast.gold_group, signer=bob_keys, by_device=bob_device)[0], 400, "not_member_device"),
        (alice, rotation_for(cast.gold_group, signer=pending_keys, by_device=pending)[0], 400, "not_member_device"),
        (api_client(cast.charlie), rotation_for(cast.gold_group, signer=charlie_keys, by_device=charlie)[0], 404,
         "not_found"),
        (alice, other_group, 400, "malformed"),
        (alice, b'{"record": {}, "sig": ""}', 400, "malformed"),
    ]
    for client, rotation, status, code in cases:
        response = rotate(client, gold, rotation)
        assert (response.status_code, response.json()["error"]) == (status, code), code
    assert api_post(alice, f"groups/{gold}/rotations", {"rotation": 7}).json()["error"] == "invalid"
    # A revoked device rotates no more.
    assert api_post(api_client(cast.bob), f"devices/{bob_device}/revoke").status_code == 200
    rotation, _ = rotation_for(cast.gold_group, signer=bob_keys, by_device=bob_device)
    assert rotate(api_client(cast.bob), gold, rotation).json()["error"] == "not_member_device"
    assert not GroupEpoch.objects.exists()


def test_it_asks_for_a_rotation_when_members_devices_or_time_change(
    cast: Cast, devices: dict[str, tuple[str, crypto.DeviceKeys]], settings: Any
) -> None:
    settings.EPOCH_MAX_AGE_HOURS = 24
    alice = api_client(cast.alice)
    gold = cast.gold_group
    device, keys = devices["alice"]

    def state() -> tuple[bool, bool]:
        s = selectors.epoch_state(group=gold)
        return s.needs_rotation, s.rotation_required

    assert state() == (True, True)  # no epoch yet
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        assert rotate(alice, gold.pk, rotation_for(gold, signer=keys, by_device=device)[0]).status_code == 201
        assert state() == (False, False)
        # Someone's device added: the next sender should rotate (newcomers read nothing older), sends still go.
        laptop, laptop_keys, _ = register_device(alice)
        assert state() == (False, False)  # pending devices get no key
        signature = crypto.sign_device_approval(keys=keys, user=cast.alice.pk, device=laptop,
                                                sign_pub=crypto.b64e(laptop_keys.signing_public),
                                                dh_pub=crypto.b64e(laptop_keys.agreement_public))
        api_post(alice, f"devices/{laptop}/approve", {"approver_device": device, "signature": signature})
        assert state() == (True, False)
        assert rotate(alice, gold.pk, rotation_for(gold, signer=keys, by_device=device)[0]).status_code == 201
        assert state() == (False, False)
        # The timer: a key older than EPOCH_MAX_AGE_HOURS should be replaced.
        traveller.shift(timedelta(hours=23))
        assert state() == (False, False)
        traveller.shift(timedelta(hours=1, seconds=1))
        assert state() == (True, False)
        alice = api_client(cast.alice)  # a day later: a new sign-in
        assert rotate(alice, gold.pk, rotation_for(gold, signer=keys, by_device=device)[0]).status_code == 201
        # Someone removed: rotating is mandatory.
        group_member_remove(actor=cast.admin, member=GroupMember.objects.get(group=gold, user=cast.warden))
        assert state() == (True, True)
        listed = api_get(alice, "groups").json()["groups"][0]
        assert (listed["epoch"], listed["needs_rotation"]) == (3, True)


def test_it_refuses_sends_after_a_removal_until_the_key_is_rotated(cast: Cast) -> None:
    gold = cast.gold_group.pk
    before = seal(cast.alice.pk, gold, "the van is back")  # the kit rotates to epoch 1 for alice, bob, warden
    assert send_as(cast.alice.pk, gold, envelope=before).seq == 1
    old_epoch_envelope = seal(cast.bob.pk, gold, "written before the removal")
    group_member_remove(actor=cast.admin, member=GroupMember.objects.get(group__pk=gold, user=cast.warden))
    with pytest.raises(ChatRefused) as refused:
        send_as(cast.bob.pk, gold, envelope=old_epoch_envelope)
    assert (refused.value.code, refused.value.frame()["retryable"]) == ("rotation_required", True)
    after = seal(cast.bob.pk, gold, "after the warden left")  # bob's kit rotates first: epoch 2
    assert send_as(cast.bob.pk, gold, envelope=after).seq == 2
    latest = GroupEpoch.objects.get(group_id=gold, epoch=2)
    assert set(EpochWrap.objects.filter(epoch=latest).values_list("device_id", flat=True)) == {
        kit_device(cast.alice.pk), kit_device(cast.bob.pk)}
    # The warden's device can open epoch 1 but was given nothing for epoch 2: what follows is closed to it.
    assert unseal(cast.warden.pk, gold, before).text == "the van is back"
    with pytest.raises(crypto.E2EEError) as closed:
        unseal(cast.warden.pk, gold, after)
    assert closed.value.code == crypto.CODE_UNKNOWN_EPOCH
    assert unseal(cast.alice.pk, gold, after).text == "after the warden left"
    # An envelope of the old epoch is now stale.
    with pytest.raises(ChatRefused) as stale:
        send_as(cast.bob.pk, gold, envelope=old_epoch_envelope)
    assert stale.value.code == "stale_epoch"
    assert Message.objects.filter(group_id=gold).count() == 2


def test_it_refuses_envelopes_that_misname_their_group_sender_or_device(cast: Cast) -> None:
    gold = cast.gold_group.pk
    epoch, key = kit_epoch_key(cast.alice.pk, gold)

    def forged(**change: Any) -> bytes:
        fields = {"keys": kit_keys(cast.alice.pk), "sender": cast.alice.pk, "device": kit_device(cast.alice.pk),
                  "group": gold, "epoch": epoch, "epoch_key": key, "text": "x", "sent_at": 1, **change}
        return crypto.encrypt_message(**fields)

    cases = {
        "another group": forged(group=cast.abington_group.pk),
        "another sender": forged(sender=cast.bob.pk),
        "another device": forged(device=kit_device(cast.bob.pk)),
        "not an envelope": b"sealed",
    }
    for name, envelope in cases.items():
        with pytest.raises(ChatRefused) as refused:
            send_as(cast.alice.pk, gold, envelope=envelope)
        assert refused.value.code == "bad_envelope", name
    with pytest.raises(ChatRefused) as unknown:
        services.message_send(user_id=cast.alice.pk, group_id=gold, client_id=uuid.uuid4(), envelope=forged(),
                              device=str(uuid.uuid4()))
    assert unknown.value.code == "unknown_device"
    with pytest.raises(ChatRefused) as missing:
        services.message_send(user_id=cast.alice.pk, group_id=gold, client_id=uuid.uuid4(), envelope=forged())
    assert missing.value.code == "unknown_device"
    assert not Message.objects.exists()
    assert send_as(cast.alice.pk, gold, envelope=forged()).seq == 1


def test_it_forgets_epochs_that_no_unexpired_message_needs(cast: Cast) -> None:
    from chat import jobs
    from chat.models import Device

    gold = cast.gold_group.pk
    first = send_as(cast.alice.pk, gold, "in epoch 1")
    Device.objects.filter(pk=kit_device(cast.warden.pk)).update(status=Device.Status.REVOKED)
    send_as(cast.alice.pk, gold, "in epoch 2")  # the kit rotates first
    Device.objects.filter(pk=kit_device(cast.bob.pk)).update(status=Device.Status.REVOKED)
    seal(cast.alice.pk, gold)  # epoch 3, no message in it yet
    assert list(GroupEpoch.objects.filter(group_id=gold).values_list("epoch", flat=True)) == [1, 2, 3]
    assert jobs.purge_expired()["epochs"] == 0  # every epoch is still needed
    Message.objects.filter(group_id=gold, seq=first.seq).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert jobs.purge_expired() == {"messages": 1, "blobs": 0, "epochs": 1}
    assert list(GroupEpoch.objects.filter(group_id=gold).values_list("epoch", flat=True)) == [2, 3]
    Message.objects.filter(group_id=gold).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert jobs.purge_expired()["epochs"] == 1
    assert list(GroupEpoch.objects.filter(group_id=gold).values_list("epoch", flat=True)) == [3]  # never below current
    assert EpochWrap.objects.filter(epoch__epoch__lt=3).count() == 0
    assert send_as(cast.alice.pk, gold, "epoch 3 goes on").seq == 3
