"""Access to every chat API endpoint: signed out -> 401; someone else's group, device or blob -> 404 (exactly as
if it did not exist); CSRF on writes; methods."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from chat import crypto
from tests.cast import Cast
from tests.chat.test_hub_kit import API, api_client, api_get, api_post, register_device, rotation_for

pytestmark = pytest.mark.django_db


@dataclass
class World:
    cast: Cast
    alice_device: str
    alice_keys: crypto.DeviceKeys
    charlie_device: str
    charlie_keys: crypto.DeviceKeys
    blob_id: str


@pytest.fixture
def world(cast: Cast, settings: Settings, tmp_path: Path) -> World:
    settings.MEDIA_ROOT = tmp_path
    alice, charlie = api_client(cast.alice), api_client(cast.charlie)
    alice_device, alice_keys, _ = register_device(alice)
    charlie_device, charlie_keys, _ = register_device(charlie)
    rotation, _ = rotation_for(cast.gold_group, signer=alice_keys, by_device=alice_device)
    assert api_post(alice, f"groups/{cast.gold_group.pk}/rotations", {"rotation": rotation.decode()}).status_code == 201
    blob, _, _ = crypto.encrypt_blob(b"photo of the van")
    uploaded = alice.post(f"{API}blobs?group={cast.gold_group.pk}", data=blob, content_type="application/octet-stream")
    assert uploaded.status_code == 201
    return World(cast, alice_device, alice_keys, charlie_device, charlie_keys, uploaded.json()["blob_id"])


Call = Callable[[Client, World], Any]


def post(path: Callable[[World], str], data: Callable[[World], Any] | None = None) -> Call:
    return lambda client, w: api_post(client, path(w), data(w) if data else {})


def get(path: Callable[[World], str]) -> Call:
    return lambda client, w: api_get(client, path(w))


def gold_rotation(w: World) -> dict[str, Any]:
    rotation, _ = rotation_for(w.cast.gold_group, signer=w.charlie_keys, by_device=w.charlie_device)
    return {"rotation": rotation.decode()}


# Every endpoint, as charlie (Abington Street) would call it on alice's things (Gold Street).
ENDPOINTS: dict[str, Call] = {
    "approve alice's device": post(lambda w: f"devices/{w.alice_device}/approve",
                                   lambda w: {"approver_device": w.charlie_device, "signature": "x"}),
    "revoke alice's device": post(lambda w: f"devices/{w.alice_device}/revoke"),
    "re-enrol alice": post(lambda w: f"users/{w.cast.alice.pk}/reenrol"),
    "gold directory": get(lambda w: f"groups/{w.cast.gold_group.pk}/directory"),
    "gold epochs": get(lambda w: f"groups/{w.cast.gold_group.pk}/epochs?device={w.charlie_device}"),
    "gold rotation": post(lambda w: f"groups/{w.cast.gold_group.pk}/rotations", gold_rotation),
    "upload to gold": lambda client, w: client.post(f"{API}blobs?group={w.cast.gold_group.pk}", data=b"sealed",
                                                    content_type="application/octet-stream"),
    "gold blob": get(lambda w: f"blobs/{w.blob_id}"),
}
OWN_ENDPOINTS: dict[str, Call] = {
    "devices": get(lambda w: "devices"),
    "register": post(lambda w: "devices"),
    "groups": get(lambda w: "groups"),
}


@pytest.mark.parametrize("name", sorted(ENDPOINTS) + sorted(OWN_ENDPOINTS))
def test_it_checks_access(world: World, name: str) -> None:
    call = ENDPOINTS.get(name) or OWN_ENDPOINTS[name]
    signed_out = call(api_client(None), world)
    assert (signed_out.status_code, signed_out.json()["error"]) == (401, "unauthenticated")
    if name in ENDPOINTS:
        refused = call(api_client(world.cast.charlie), world)
        assert (refused.status_code, refused.json()["error"]) == (404, "not_found"), refused.json()
        assert refused["Cache-Control"] == "private, no-store"


def test_it_shows_each_member_only_their_own_groups_and_devices(world: World) -> None:
    cast = world.cast
    charlie = api_client(cast.charlie)
    assert [g["id"] for g in api_get(charlie, "groups").json()["groups"]] == [cast.abington_group.pk]
    assert [d["device_id"] for d in api_get(charlie, "devices").json()["devices"]] == [world.charlie_device]
    alice_groups = api_get(api_client(cast.alice), "groups").json()["groups"]
    assert alice_groups == [{"id": cast.gold_group.pk, "name": "Gold Street", "kind": "street", "last_seq": 0,
                             "epoch": 1, "needs_rotation": False,
                             "retention_seconds": cast.gold_group.retention_seconds}]
    # A member asking for epochs with someone else's device id learns nothing either.
    bob = api_client(cast.bob)
    assert api_get(bob, f"groups/{cast.gold_group.pk}/epochs?device={world.alice_device}").status_code == 404
    assert api_get(bob, f"groups/{cast.gold_group.pk}/epochs").status_code == 400
    assert api_get(bob, f"groups/{cast.gold_group.pk}/directory").status_code == 200
    assert api_get(bob, f"blobs/{world.blob_id}").status_code == 200


def test_it_needs_the_csrf_token_and_the_right_method(world: World) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world.cast.alice)
    assert strict.post(f"{API}devices/{world.alice_device}/revoke").status_code == 403
    alice = api_client(world.cast.alice)
    wrong = alice.get(f"{API}groups/{world.cast.gold_group.pk}/rotations")
    assert (wrong.status_code, wrong.json()["error"], wrong["Allow"]) == (405, "method_not_allowed", "POST")
    assert alice.delete(f"{API}devices").status_code == 405


def test_it_does_not_serve_blobs_as_public_files(world: World) -> None:
    assert api_client(world.cast.alice).get(f"/media/chat-blobs/{world.blob_id}").status_code == 404
