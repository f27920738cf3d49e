"""The alerts JSON endpoints: devices, preferences, broadcasts, acknowledgement, photos, VAPID key."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from PIL import Image

from alerts import push, services
from alerts.models import AlertPrefs, Broadcast, PushSubscription
from members.models import User
from tests.alerts.conftest import subscribe
from tests.alerts.fake_push import FakePushService, new_keys
from tests.cast import Cast


def signed_in(user: User, **options: Any) -> Client:
    client = Client(**options)
    client.force_login(user)
    return client


def post(client: Client, path: str, data: dict[str, Any]) -> Any:
    return client.post(path, json.dumps(data), content_type="application/json")


def a_broadcast(cast: Cast, **options: Any) -> Broadcast:
    options.setdefault("street_ids", [cast.gold.pk])
    return services.broadcast_create(author=cast.warden, title="Shoplifters", text="Lock doors", **options)


ENDPOINTS = [
    ("get", "/alerts/subscriptions"),
    ("post", "/alerts/subscriptions"),
    ("delete", "/alerts/subscriptions/1"),
    ("get", "/alerts/prefs"),
    ("post", "/alerts/prefs"),
    ("get", "/alerts/broadcasts"),
    ("post", "/alerts/broadcasts"),
    ("get", "/alerts/broadcasts/1"),
    ("post", "/alerts/broadcasts/1/ack"),
    ("get", "/alerts/broadcasts/1/photo"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_it_checks_access(db: None, client: Client, method: str, path: str) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 401
    assert response.json() == {"error": "Sign in first"}


def test_it_checks_access_to_devices(cast: Cast, fake_push: FakePushService) -> None:
    _, alices = subscribe(fake_push, cast.alice)
    _, bobs = subscribe(fake_push, cast.bob)
    client = signed_in(cast.bob)

    listed = client.get("/alerts/subscriptions").json()["devices"]
    assert [d["id"] for d in listed] == [bobs.pk]
    assert client.delete(f"/alerts/subscriptions/{alices.pk}").status_code == 404
    assert PushSubscription.objects.filter(pk=alices.pk).exists()
    assert client.delete(f"/alerts/subscriptions/{bobs.pk}").status_code == 204
    assert not PushSubscription.objects.filter(pk=bobs.pk).exists()


def test_it_checks_access_to_broadcasting(cast: Cast) -> None:
    body = {"title": "Hello", "text": "Everyone", "priority": "urgent", "audience": {"all": True}}
    for user in (cast.bob, cast.alice, cast.officer, cast.police):
        response = post(signed_in(user), "/alerts/broadcasts", body)
        assert response.status_code == 403, user
    assert not Broadcast.objects.exists()
    assert post(signed_in(cast.warden), "/alerts/broadcasts", body).status_code == 201
    assert post(signed_in(cast.admin), "/alerts/broadcasts", body).status_code == 201


def test_it_checks_access_to_a_broadcast_and_its_acknowledgement(cast: Cast) -> None:
    broadcast = a_broadcast(cast)
    charlie = signed_in(cast.charlie)
    assert charlie.get(f"/alerts/broadcasts/{broadcast.pk}").status_code == 404
    assert charlie.post(f"/alerts/broadcasts/{broadcast.pk}/ack").status_code == 404
    assert charlie.get("/alerts/broadcasts").json() == {"received": [], "sent": [], "can_broadcast": False}

    bob = signed_in(cast.bob)
    detail = bob.get(f"/alerts/broadcasts/{broadcast.pk}").json()
    assert detail["title"] == "Shoplifters" and "counts" not in detail
    assert bob.post(f"/alerts/broadcasts/{broadcast.pk}/ack").status_code == 200
    assert bob.get("/alerts/broadcasts").json()["received"][0]["seen"] is True

    # An admin oversees every broadcast, with counts but no list of who.
    overseen = signed_in(cast.admin).get(f"/alerts/broadcasts/{broadcast.pk}").json()
    assert overseen["counts"]["seen"] == 1 and overseen["counts"]["recipients"] == 2
    assert "recipients" not in overseen


def test_it_checks_access_to_a_broadcast_photo(cast: Cast) -> None:
    image = io.BytesIO()
    Image.new("RGB", (20, 10), "blue").save(image, format="PNG")
    broadcast = a_broadcast(cast, photo=image.getvalue())
    assert signed_in(cast.charlie).get(f"/alerts/broadcasts/{broadcast.pk}/photo").status_code == 404
    response = signed_in(cast.bob).get(f"/alerts/broadcasts/{broadcast.pk}/photo")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(b"".join(response.streaming_content))).size == (20, 10)
    no_photo = a_broadcast(cast)
    assert signed_in(cast.bob).get(f"/alerts/broadcasts/{no_photo.pk}/photo").status_code == 404


def test_it_checks_access_to_prefs(cast: Cast) -> None:
    AlertPrefs.objects.create(user=cast.alice, no_preview=True)
    bob = signed_in(cast.bob)
    assert bob.get("/alerts/prefs").json()["no_preview"] is False
    # Muting a group bob is not in is refused.
    response = post(bob, "/alerts/prefs", {"muted_groups": [cast.abington_group.pk]})
    assert response.status_code == 400
    assert response.json() == {"error": "You can only mute groups you belong to"}


def test_it_serves_the_vapid_public_key(db: None, client: Client) -> None:
    response = client.get("/alerts/vapid-public-key")
    assert response.status_code == 200
    key = response.json()["publicKey"]
    assert key == push.vapid_public_key()
    assert len(push.b64url_decode(key)) == 65


def test_it_subscribes_a_device_in_the_browsers_format(cast: Cast, fake_push: FakePushService) -> None:
    device = fake_push.subscribe()
    client = signed_in(cast.bob)

    response = post(client, "/alerts/subscriptions", {"subscription": device.as_json(), "label": "Shop phone"})

    assert response.status_code == 201
    data = response.json()
    assert data["label"] == "Shop phone"
    assert data["push_service"] == fake_push.origin.split("//")[1]
    stored = PushSubscription.objects.get()
    assert (stored.user, stored.endpoint, stored.p256dh) == (cast.bob, device.endpoint, device.p256dh)
    # Subscribing again from the same browser refreshes the row rather than adding one.
    assert post(client, "/alerts/subscriptions", {"subscription": device.as_json()}).status_code == 201
    assert PushSubscription.objects.count() == 1


def test_it_moves_a_device_to_whoever_subscribes_it_now(cast: Cast, fake_push: FakePushService) -> None:
    device, stored = subscribe(fake_push, cast.alice)
    post(signed_in(cast.bob), "/alerts/subscriptions", {"subscription": device.as_json()})
    stored.refresh_from_db()
    assert stored.user == cast.bob


@pytest.mark.parametrize("subscription", [
    {"endpoint": "https://192.168.0.10/push/x"},
    {"endpoint": "https://[fe80::1]/push/x"},
    {"endpoint": "not a url"},
])
def test_it_refuses_private_or_invalid_endpoints(cast: Cast, subscription: dict[str, Any]) -> None:
    _, p256dh, auth = new_keys()
    response = post(signed_in(cast.bob), "/alerts/subscriptions",
                    {"subscription": {**subscription, "keys": {"p256dh": p256dh, "auth": auth}}})
    assert response.status_code == 400
    assert "endpoint refused" in response.json()["error"]
    assert not PushSubscription.objects.exists()


def test_it_refuses_invalid_keys(cast: Cast, fake_push: FakePushService) -> None:
    device = fake_push.subscribe()
    response = post(signed_in(cast.bob), "/alerts/subscriptions",
                    {"endpoint": device.endpoint, "keys": {"p256dh": "AAAA", "auth": device.auth}})
    assert response.status_code == 400


def test_it_updates_prefs(cast: Cast) -> None:
    client = signed_in(cast.bob)
    response = post(client, "/alerts/prefs", {
        "quiet_start": "22:00", "quiet_end": "07:00", "no_preview": True, "muted_groups": [cast.gold_group.pk],
    })
    assert response.status_code == 200
    assert response.json() == {
        "quiet_start": "22:00", "quiet_end": "07:00", "no_preview": True, "muted_groups": [cast.gold_group.pk],
    }
    # A partial update keeps the rest.
    assert post(client, "/alerts/prefs", {"no_preview": False}).json()["quiet_start"] == "22:00"
    cleared = post(client, "/alerts/prefs", {"quiet_start": None, "quiet_end": None, "muted_groups": []}).json()
    assert cleared == {"quiet_start": None, "quiet_end": None, "no_preview": False, "muted_groups": []}
    assert post(client, "/alerts/prefs", {"quiet_start": "25:99", "quiet_end": "07:00"}).status_code == 400
    assert post(client, "/alerts/prefs", {"quiet_start": "22:00", "quiet_end": None}).status_code == 400


def test_it_broadcasts_through_the_api_and_reports_counts(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.alice)
    warden = signed_in(cast.warden)
    response = post(warden, "/alerts/broadcasts", {
        "title": "Shoplifters", "text": "Group of 6, lock doors", "priority": "urgent",
        "audience": {"streets": [cast.gold.pk]}, "expires_in_minutes": 120,
    })
    assert response.status_code == 201
    created = response.json()
    assert created["counts"] == {"recipients": 2, "delivered": 0, "seen": 0, "failed": 0, "push_queued": 1}
    assert created["audience"]["streets"] == [{"id": cast.gold.pk, "name": "Gold Street"}]
    services.deliver_due()
    history = warden.get("/alerts/broadcasts").json()
    assert history["can_broadcast"] is True
    assert history["sent"][0]["counts"]["delivered"] == 1
    assert fake_push.deliveries[0].json()["id"] == created["id"]


def test_it_broadcasts_a_photo_as_multipart(cast: Cast) -> None:
    image = io.BytesIO()
    Image.new("RGB", (30, 30), "green").save(image, format="JPEG")
    response = signed_in(cast.admin).post("/alerts/broadcasts", {
        "title": "Suspect", "text": "Seen near the bakery", "priority": "warning",
        "groups": [cast.abington_group.pk], "photo": SimpleUploadedFile("s.jpg", image.getvalue(), "image/jpeg"),
    })
    assert response.status_code == 201, response.content
    assert response.json()["photo_url"].endswith("/photo")
    assert response.json()["counts"]["recipients"] == 1


def test_it_rejects_a_bad_broadcast_with_a_clear_message(cast: Cast) -> None:
    response = post(signed_in(cast.warden), "/alerts/broadcasts", {"title": "x", "text": "y"})
    assert response.status_code == 400
    assert response.json() == {"error": "Choose an audience: everyone, groups, streets or roles"}
    bad_json = signed_in(cast.warden).post("/alerts/broadcasts", "{", content_type="application/json")
    assert bad_json.status_code == 400


def test_it_requires_the_csrf_token(cast: Cast) -> None:
    client = signed_in(cast.warden, enforce_csrf_checks=True)
    body = {"title": "Hello", "text": "Everyone", "audience": {"all": True}}
    assert post(client, "/alerts/broadcasts", body).status_code == 403
    assert not Broadcast.objects.exists()
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    response = client.post("/alerts/broadcasts", json.dumps(body), content_type="application/json",
                           headers={"X-CSRFToken": token})
    assert response.status_code == 201
