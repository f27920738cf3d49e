"""The alerts pages without JavaScript: Alerts (devices, preferences, history), Broadcast, a broadcast's page."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from alerts import services
from alerts.models import AlertPrefs, Broadcast, BroadcastRecipient, PushDelivery, PushSubscription
from members.models import AuditEvent, User
from tests.alerts.conftest import subscribe
from tests.alerts.fake_push import FakePushService
from tests.cast import Cast

PAGES = ["/alerts/", "/alerts/broadcasts/new/", "/alerts/broadcasts/1/"]


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def a_broadcast(cast: Cast, **options: Any) -> Broadcast:
    options.setdefault("street_ids", [cast.gold.pk])
    options.setdefault("priority", "urgent")
    return services.broadcast_create(author=cast.warden, title="Shoplifters", text="Lock doors", **options)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_it_checks_access(db: None, client: Client, method: str, path: str) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_checks_access_per_role_and_object(cast: Cast, fake_push: FakePushService) -> None:
    broadcast = a_broadcast(cast)
    _, bobs = subscribe(fake_push, cast.bob)
    alice, charlie = signed_in(cast.alice), signed_in(cast.charlie)
    # Only wardens and BID admins broadcast.
    for who in (cast.alice, cast.officer, cast.police, cast.dpo):
        assert signed_in(who).get("/alerts/broadcasts/new/").status_code == 403
    assert alice.post("/alerts/broadcasts/new/", {"title": "x", "text": "y", "priority": "info",
                                                   "audience_all": "on"}).status_code == 403
    assert not Broadcast.objects.exclude(pk=broadcast.pk).exists()
    for who in (cast.warden, cast.admin):
        assert signed_in(who).get("/alerts/broadcasts/new/").status_code == 200
    # A broadcast one did not receive does not exist for them; wardens and BID admins oversee all.
    assert charlie.get(f"/alerts/broadcasts/{broadcast.pk}/").status_code == 404
    assert charlie.post(f"/alerts/broadcasts/{broadcast.pk}/").status_code == 404
    assert charlie.post("/alerts/", {"action": "ack", "broadcast": broadcast.pk}).status_code == 404
    assert alice.get(f"/alerts/broadcasts/{broadcast.pk}/").status_code == 200
    assert signed_in(cast.admin).get(f"/alerts/broadcasts/{broadcast.pk}/").status_code == 200
    # Someone else's device cannot be removed.
    assert alice.post("/alerts/", {"action": "remove_device", "device": bobs.pk}).status_code == 404
    assert alice.post("/alerts/", {"action": "remove_device", "device": "x"}).status_code == 404
    assert PushSubscription.objects.filter(pk=bobs.pk).exists()
    assert alice.post("/alerts/", {"action": "nonsense"}).status_code == 400


def test_it_shows_every_member_their_page(cast: Cast, fake_push: FakePushService) -> None:
    a_broadcast(cast)
    subscribe(fake_push, cast.alice, label="Shop phone")
    html = signed_in(cast.alice).get("/alerts/").content.decode()
    assert "Shop phone" in html
    assert "Shoplifters" in html
    assert 'aria-label="Seen: Shoplifters"' in html
    assert "Send a broadcast" not in html
    assert 'id="push-panel"' in html and 'data-no-preview="false"' in html
    for who in (cast.police, cast.dpo, cast.realm, cast.officer):
        assert signed_in(who).get("/alerts/").status_code == 200
    assert "Send a broadcast" in signed_in(cast.warden).get("/alerts/").content.decode()


def test_it_saves_preferences(cast: Cast) -> None:
    alice = signed_in(cast.alice)
    response = alice.post("/alerts/", {"action": "prefs", "quiet_start": "22:00", "quiet_end": "07:00",
                                        "no_preview": "on", "muted_groups": [cast.gold_group.pk]}, follow=True)
    assert "Your alert preferences are saved." in messages_of(response)
    prefs = AlertPrefs.objects.get(user=cast.alice)
    assert (prefs.quiet_start.isoformat(), prefs.quiet_end.isoformat(), prefs.no_preview) == ("22:00:00", "07:00:00", True)
    assert list(prefs.muted_groups.all()) == [cast.gold_group]
    assert 'data-no-preview="true"' in response.content.decode()
    assert 'value="22:00"' in response.content.decode()

    # Half a quiet window, or a group she is not in, is refused and nothing changes.
    response = alice.post("/alerts/", {"action": "prefs", "quiet_start": "21:00"})
    assert response.status_code == 400
    assert "Quiet hours need both a start and an end time, or neither." in response.content.decode()
    response = alice.post("/alerts/", {"action": "prefs", "muted_groups": [cast.abington_group.pk]})
    assert response.status_code == 400
    prefs.refresh_from_db()
    assert prefs.quiet_start.isoformat() == "22:00:00"
    assert list(prefs.muted_groups.all()) == [cast.gold_group]


def test_it_removes_a_device(cast: Cast, fake_push: FakePushService) -> None:
    _, device = subscribe(fake_push, cast.alice, label="Old phone")
    response = signed_in(cast.alice).post("/alerts/", {"action": "remove_device", "device": device.pk}, follow=True)
    assert "Removed Old phone: it gets no more notifications." in messages_of(response)
    assert not PushSubscription.objects.filter(pk=device.pk).exists()


def test_it_acknowledges_from_the_history_and_the_broadcast_page(cast: Cast) -> None:
    first, second = a_broadcast(cast), a_broadcast(cast, priority="info")
    alice = signed_in(cast.alice)
    response = alice.post("/alerts/", {"action": "ack", "broadcast": first.pk}, follow=True)
    assert "Marked as seen: Shoplifters" in messages_of(response)
    assert BroadcastRecipient.objects.get(broadcast=first, user=cast.alice).seen_at is not None

    # Opening the page counts as delivered ("opened in the app"); the Seen button records seen.
    page = alice.get(f"/alerts/broadcasts/{second.pk}/")
    row = BroadcastRecipient.objects.get(broadcast=second, user=cast.alice)
    assert (row.delivered_via, row.seen_at) == (BroadcastRecipient.Via.APP, None)
    assert "Reach" not in page.content.decode()  # counts are for wardens and BID admins
    alice.post(f"/alerts/broadcasts/{second.pk}/")
    row.refresh_from_db()
    assert row.seen_at is not None
    assert "You marked this as seen" in alice.get(f"/alerts/broadcasts/{second.pk}/").content.decode()


def _jpeg() -> SimpleUploadedFile:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return SimpleUploadedFile("suspect.jpg", out.getvalue(), content_type="image/jpeg")


def test_it_broadcasts_from_the_plain_form(cast: Cast, fake_push: FakePushService) -> None:
    for who in ("alice", "bob", "charlie"):
        subscribe(fake_push, getattr(cast, who))
    warden = signed_in(cast.warden)
    response = warden.post("/alerts/broadcasts/new/", {
        "title": "Shoplifters heading north", "text": "Group of 6, lock doors.", "priority": "urgent",
        "streets": [cast.gold.pk], "expires_in": "60", "photo": _jpeg(),
    }, follow=True)
    broadcast = Broadcast.objects.get()
    assert response.redirect_chain == [(f"/alerts/broadcasts/{broadcast.pk}/", 302)]
    assert "Broadcast sent to 2 people." in messages_of(response)
    assert set(broadcast.recipients.values_list("user__email", flat=True)) == {cast.alice.email, cast.bob.email}
    assert broadcast.photo and broadcast.expires_at is not None
    assert PushDelivery.objects.filter(broadcast=broadcast, urgency="high").count() == 2
    html = response.content.decode()
    assert 'data-count="recipients">2<' in html and 'data-count="push_queued">2<' in html
    assert "Street: Gold Street" in html
    assert f'src="/alerts/broadcasts/{broadcast.pk}/photo"' in html
    audit = AuditEvent.objects.get(action="broadcast.create")
    assert audit.detail["via"] == "page"
    assert "Group of 6" not in str(audit.detail)

    services.deliver_due()
    sent = warden.get("/alerts/broadcasts/new/").content.decode()
    assert "2 recipients: 2 delivered, 0 seen, 0 failed" in sent


def test_it_refuses_a_broadcast_without_an_audience(cast: Cast) -> None:
    response = signed_in(cast.admin).post("/alerts/broadcasts/new/", {
        "title": "Hello", "text": "Everyone?", "priority": "info", "expires_in": "",
    })
    assert response.status_code == 400
    assert "Choose who gets it: everyone, or some groups, streets or roles." in response.content.decode()
    response = signed_in(cast.admin).post("/alerts/broadcasts/new/", {
        "title": "Hello", "text": "Everyone?", "priority": "loud", "audience_all": "on",
    })
    assert response.status_code == 400
    assert not Broadcast.objects.exists()
