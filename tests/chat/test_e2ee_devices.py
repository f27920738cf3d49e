"""The E2EE key directory: device registration, approval by another device, revocation, re-enrolment (audited)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chat import crypto, selectors, services
from chat.models import Device
from members.models import AuditEvent
from tests.cast import Cast
from tests.chat.test_hub_kit import api_client, api_get, api_post, register_device

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Channel-layer events chat.services publishes (after commit), recorded instead of sent."""
    events: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(services, "publish_on_commit", lambda group, event: events.append((group, event)))
    return events


def keys_changed(cast: Cast, user: Any) -> tuple[str, dict[str, Any]]:
    group = cast.gold_group.pk
    return f"group.{group}", {"type": "keys.changed", "group": group, "user": user.pk}


def approval(signer: crypto.DeviceKeys, user: Any, device: str, keys: crypto.DeviceKeys) -> str:
    return crypto.sign_device_approval(keys=signer, user=user.pk, device=device,
                                       sign_pub=crypto.b64e(keys.signing_public),
                                       dh_pub=crypto.b64e(keys.agreement_public))


def test_it_approves_a_users_first_device_at_once_and_holds_the_next(
    cast: Cast, published: list[tuple[str, dict[str, Any]]]
) -> None:
    alice = api_client(cast.alice)
    first, first_keys, response = register_device(alice, label="Alice's phone")
    assert response.status_code == 201 and response.json() == {"device_id": first, "status": "approved"}
    assert published == [keys_changed(cast, cast.alice)]
    second, _, response = register_device(alice)
    assert response.status_code == 201 and response.json()["status"] == "pending"
    assert len(published) == 1  # a pending device changes nobody's keys yet
    # The same keys again: nothing changes.
    _, _, again = register_device(alice, first_keys, device_id=first)
    assert again.status_code == 200 and again.json() == {"device_id": first, "status": "approved"}
    listed = api_get(alice, "devices").json()["devices"]
    assert [(d["device_id"], d["status"], d["label"]) for d in listed] == [
        (first, "approved", "Alice's phone"), (second, "pending", "test phone")]
    assert listed[0]["fingerprint"] == crypto.fingerprint(first_keys.signing_public, first_keys.agreement_public)
    assert listed[0]["sign_pub"] == crypto.b64e(first_keys.signing_public)
    # Only approved devices are in the group's directory.
    members = {m["user"]: m for m in api_get(alice, f"groups/{cast.gold_group.pk}/directory").json()["members"]}
    assert [d["device_id"] for d in members[cast.alice.pk]["devices"]] == [first]
    assert members[cast.alice.pk]["business"] == "Gold Street Books" and members[cast.bob.pk]["devices"] == []
    audits = AuditEvent.objects.filter(action="chat.device_register", subject=cast.alice).order_by("pk")
    assert [(a.object_id, a.detail["status"]) for a in audits] == [(first, "approved"), (second, "pending")]


def test_it_approves_a_pending_device_only_with_an_approved_devices_signature(
    cast: Cast, published: list[tuple[str, dict[str, Any]]]
) -> None:
    alice, bob = api_client(cast.alice), api_client(cast.bob)
    phone, phone_keys, _ = register_device(alice)
    laptop, laptop_keys, _ = register_device(alice)
    tablet, tablet_keys, _ = register_device(alice)
    bobs, bobs_keys, _ = register_device(bob)
    published.clear()

    def approve(device: str, approver: str, signature: str) -> Any:
        return api_post(alice, f"devices/{device}/approve", {"approver_device": approver, "signature": signature})

    refusals = [
        (approve(laptop, tablet, approval(tablet_keys, cast.alice, laptop, laptop_keys)), 400, "unknown_device"),
        (approve(laptop, bobs, approval(bobs_keys, cast.alice, laptop, laptop_keys)), 400, "unknown_device"),
        (approve(laptop, phone, approval(phone_keys, cast.alice, tablet, tablet_keys)), 400, "bad_signature"),
        (approve(laptop, phone, approval(phone_keys, cast.bob, laptop, laptop_keys)), 400, "bad_signature"),
        (approve(laptop, phone, "not-a-signature"), 400, "bad_signature"),
        (approve(bobs, phone, approval(phone_keys, cast.alice, bobs, bobs_keys)), 404, "not_found"),
    ]
    for response, status, code in refusals:
        assert (response.status_code, response.json()["error"]) == (status, code)
    assert Device.objects.get(pk=laptop).status == Device.Status.PENDING
    assert published == []
    good = approve(laptop, phone, approval(phone_keys, cast.alice, laptop, laptop_keys))
    assert good.status_code == 200 and good.json() == {"device_id": laptop, "status": "approved"}
    stored = Device.objects.get(pk=laptop)
    assert stored.approved_by == phone and stored.approved_at is not None
    assert published == [keys_changed(cast, cast.alice)]
    audit = AuditEvent.objects.get(action="chat.device_approve")
    assert (audit.actor, audit.subject, audit.object_id, audit.detail["approved_by"]) == (
        cast.alice, cast.alice, laptop, phone)
    again = approve(laptop, phone, approval(phone_keys, cast.alice, laptop, laptop_keys))
    assert (again.status_code, again.json()["error"]) == (409, "not_pending")


def test_it_revokes_a_device_and_asks_its_groups_to_rotate(
    cast: Cast, published: list[tuple[str, dict[str, Any]]]
) -> None:
    alice = api_client(cast.alice)
    phone, phone_keys, _ = register_device(alice)
    rotation, _ = crypto.rotate_epoch(signer=phone_keys, by_device=phone, group=cast.gold_group.pk, epoch=1,
                                      prev_epoch=0, recipients=[(phone, phone_keys.agreement_public)])
    assert api_post(alice, f"groups/{cast.gold_group.pk}/rotations", {"rotation": rotation.decode()}).status_code == 201
    assert selectors.epoch_state(group=cast.gold_group).needs_rotation is False
    published.clear()
    response = api_post(alice, f"devices/{phone}/revoke")
    assert response.status_code == 200 and response.json() == {"device_id": phone, "status": "revoked"}
    assert published == [keys_changed(cast, cast.alice)]
    state = selectors.epoch_state(group=cast.gold_group)
    assert state.needs_rotation and state.rotation_required  # a recipient of the current key is gone
    assert AuditEvent.objects.filter(action="chat.device_revoke", object_id=phone, actor=cast.alice).count() == 1
    assert not selectors.device_usable(user_id=cast.alice.pk, device_id=phone)
    # A revoked device cannot come back; new keys are a new device, and with no approved device left to sign
    # for it, it waits for a BID admin's re-enrolment (a stolen session cannot swap in its own keys).
    _, _, back = register_device(alice, phone_keys, device_id=phone)
    assert (back.status_code, back.json()["error"]) == (409, "revoked")
    _, _, fresh = register_device(alice)
    assert fresh.json()["status"] == "pending"
    # Revoking is for one's own devices only.
    bobs, _, _ = register_device(api_client(cast.bob))
    assert api_post(alice, f"devices/{bobs}/revoke").status_code == 404


def test_it_lets_only_a_bid_admin_reenrol_a_user_and_audits_it(
    cast: Cast, published: list[tuple[str, dict[str, Any]]]
) -> None:
    bob = api_client(cast.bob)
    phone, _, _ = register_device(bob)
    laptop, _, _ = register_device(bob)
    published.clear()
    for someone in (cast.alice, cast.warden, cast.officer, cast.bob):
        response = api_post(api_client(someone), f"users/{cast.bob.pk}/reenrol")
        assert (response.status_code, response.json()["error"]) == (404, "not_found"), someone
    assert published == []
    response = api_post(api_client(cast.admin), f"users/{cast.bob.pk}/reenrol")
    assert response.status_code == 200 and response.json() == {"user": cast.bob.pk, "revoked": 2}
    assert set(Device.objects.filter(user=cast.bob).values_list("status", "revoked_reason")) == {
        ("revoked", "reenrolled")}
    assert published == [keys_changed(cast, cast.bob)]
    audit = AuditEvent.objects.get(action="chat.user_reenrol")
    assert (audit.actor, audit.subject, audit.detail) == (cast.admin, cast.bob, {"revoked_devices": 2})
    # His next device is approved as a first device.
    _, _, fresh = register_device(bob)
    assert fresh.json()["status"] == "approved"
    assert api_post(api_client(cast.admin), "users/999999/reenrol").status_code == 404
    assert {phone, laptop}.isdisjoint(selectors.member_devices(group=cast.gold_group).values_list("pk", flat=True))


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"device_id": "phone-1"}, "invalid"),
        ({"device_id": str(uuid.uuid4()).upper()}, "invalid"),
        ({"device_id": None}, "invalid"),
        ({"sign_pub": crypto.b64e(b"\x01" * 31)}, "invalid"),
        ({"sign_pub": crypto.b64e(b"\x00" * 32)}, "weak_key"),
        ({"dh_pub": crypto.b64e(b"\x00" * 32)}, "weak_key"),
        ({"dh_pub": crypto.b64e(bytes([1]) + b"\x00" * 31)}, "weak_key"),
        ({"dh_pub": "not base64url!"}, "invalid"),
    ],
)
def test_it_refuses_malformed_and_weak_device_keys(cast: Cast, change: dict[str, Any], code: str) -> None:
    keys = crypto.DeviceKeys.generate()
    payload = {"device_id": str(uuid.uuid4()), "label": "x", "sign_pub": crypto.b64e(keys.signing_public),
               "dh_pub": crypto.b64e(keys.agreement_public), **change}
    response = api_post(api_client(cast.alice), "devices", payload)
    assert (response.status_code, response.json()["error"]) == (400, code)
    assert not Device.objects.exists()


def test_it_refuses_a_device_id_taken_by_other_keys_and_too_many_devices(cast: Cast) -> None:
    alice, bob = api_client(cast.alice), api_client(cast.bob)
    phone, _, _ = register_device(alice)
    for client in (alice, bob):
        _, _, taken = register_device(client, device_id=phone)
        assert (taken.status_code, taken.json()["error"]) == (409, "conflict")
    for _ in range(services.MAX_DEVICES_PER_USER - 1):
        assert register_device(alice)[2].status_code == 201
    _, _, over = register_device(alice)
    assert (over.status_code, over.json()["error"]) == (409, "too_many_devices")
    response = alice.post("/chat/api/devices", data="not json", content_type="application/json")
    assert (response.status_code, response.json()["error"]) == (400, "invalid")
