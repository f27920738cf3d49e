"""Wardens' broadcasts: audiences, banners, pushes, quiet hours, counts, photos and the command line."""

from __future__ import annotations

import io
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.utils import timezone
from PIL import Image

from alerts import selectors, services
from alerts.models import AlertPrefs, Broadcast, BroadcastRecipient, PushDelivery
from members.models import AuditEvent, User
from tests.alerts.conftest import subscribe
from tests.alerts.fake_push import FakePushService
from tests.cast import Cast
from tests.members.layer import recording_layer

LONDON = ZoneInfo("Europe/London")


def recipients(broadcast: Broadcast) -> set[str]:
    return set(BroadcastRecipient.objects.filter(broadcast=broadcast).values_list("user__email", flat=True))


def emails(*users: User) -> set[str]:
    return {user.email for user in users}


def send(author: User, **options: object) -> Broadcast:
    options.setdefault("title", "Shoplifters")
    options.setdefault("text", "Group of 6 along the street, lock doors")
    return services.broadcast_create(author=author, **options)  # type: ignore[arg-type]


def test_it_reaches_exactly_the_members_on_the_chosen_streets(cast: Cast, fake_push: FakePushService) -> None:
    devices = {user.email: subscribe(fake_push, user)[0] for user in
               (cast.alice, cast.bob, cast.charlie, cast.warden, cast.police)}

    broadcast = send(cast.admin, priority="urgent", street_ids=[cast.gold.pk])
    services.deliver_due()

    assert recipients(broadcast) == emails(cast.alice, cast.bob)
    reached = {d.endpoint for d in fake_push.deliveries}
    assert reached == {devices[cast.alice.email].endpoint, devices[cast.bob.email].endpoint}
    assert fake_push.errors == []
    payload = fake_push.deliveries[0].json()
    assert payload == {
        "type": "alert.broadcast", "id": broadcast.pk, "priority": "urgent", "url": f"/alerts/broadcasts/{broadcast.pk}/",
        "tag": f"broadcast-{broadcast.pk}", "preview": True, "title": "Shoplifters",
        "body": "Group of 6 along the street, lock doors",
    }
    assert {d.urgency for d in fake_push.deliveries} == {"high"}


def test_it_resolves_groups_roles_and_everyone(cast: Cast) -> None:
    assert recipients(send(cast.warden, group_ids=[cast.abington_group.pk])) == emails(cast.charlie)
    # The warden sits in the Gold Street group individually; the author never receives their own alert.
    assert recipients(send(cast.admin, group_ids=[cast.gold_group.pk])) == emails(cast.alice, cast.bob, cast.warden)
    assert recipients(send(cast.warden, roles=["police", "manager"])) == emails(cast.police, cast.alice)
    everyone = set(User.objects.exclude(pk=cast.warden.pk).values_list("email", flat=True))
    assert recipients(send(cast.warden, audience_all=True)) == everyone
    assert recipients(send(cast.warden, street_ids=[cast.abington.pk], roles=["dpo"])) == emails(cast.charlie, cast.dpo)


def test_it_leaves_out_people_who_cannot_use_the_scheme(cast: Cast) -> None:
    cast.bakery.status = "suspended"
    cast.bakery.save(update_fields=["status"])
    cast.bob.is_active = False
    cast.bob.save(update_fields=["is_active"])
    assert recipients(send(cast.warden, audience_all=True)) == emails(
        cast.alice, cast.admin, cast.officer, cast.police, cast.realm, cast.dpo
    )


def test_it_publishes_an_in_app_banner_to_each_recipient_after_commit(
    cast: Cast, django_capture_on_commit_callbacks: object, settings: object
) -> None:
    layer = recording_layer(settings)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:  # type: ignore[operator]
        broadcast = send(cast.warden, priority="warning", street_ids=[cast.gold.pk])
        assert layer.sent == []  # nothing leaves before the transaction commits

    assert len(callbacks) == 2  # alice and bob
    event = {"type": "alert.broadcast", "broadcast": services.broadcast_banner(broadcast)}
    assert layer.to_user(cast.alice.pk) == [event]
    assert event["broadcast"]["author"] == "Wendy Warden (BID warden)"
    assert event["broadcast"]["url"] == f"/alerts/broadcasts/{broadcast.pk}/"  # the page, not the JSON
    assert layer.to_user(cast.charlie.pk) == []


def test_it_sends_urgent_broadcasts_through_quiet_hours_and_holds_the_rest(
    cast: Cast, fake_push: FakePushService
) -> None:
    subscribe(fake_push, cast.bob)
    AlertPrefs.objects.create(user=cast.bob, quiet_start=time(22, 0), quiet_end=time(7, 0))
    with time_machine.travel(datetime(2026, 11, 26, 23, 15, tzinfo=LONDON), tick=False) as traveller:
        urgent = send(cast.warden, priority="urgent", street_ids=[cast.gold.pk])
        info = send(cast.warden, title="Road closed", priority="info", street_ids=[cast.gold.pk])
        warning = send(cast.warden, title="Fire drill", priority="warning", street_ids=[cast.gold.pk])

        assert services.deliver_due() == {"claimed": 1, "sent": 1}
        assert [d.json()["id"] for d in fake_push.deliveries] == [urgent.pk]
        assert fake_push.deliveries[0].urgency == "high"

        traveller.move_to(datetime(2026, 11, 27, 7, 0, tzinfo=LONDON))
        assert services.deliver_due() == {"claimed": 2, "sent": 2}
    assert {d.json()["id"]: d.urgency for d in fake_push.deliveries[1:]} == {info.pk: "low", warning.pk: "normal"}


def test_it_hides_the_preview_for_users_who_asked(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    subscribe(fake_push, cast.alice)
    AlertPrefs.objects.create(user=cast.bob, no_preview=True)

    broadcast = send(cast.warden, priority="urgent", street_ids=[cast.gold.pk])
    services.deliver_due()

    by_preview = {d.json()["preview"]: d.json() for d in fake_push.deliveries}
    assert by_preview[True]["body"] == broadcast.text
    hidden = by_preview[False]
    assert hidden["title"] == "Urgent alert from the BID"
    assert broadcast.title not in hidden.values() and broadcast.text not in str(hidden)


def test_it_truncates_a_long_text_to_fit_one_push(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    text = "🚨 " * 1000  # 2000 characters, 5000 bytes of UTF-8: too much for one push
    send(cast.warden, text=text[:2000], street_ids=[cast.gold.pk])
    services.deliver_due()
    [delivery] = fake_push.deliveries
    assert delivery.body_size <= 4096
    body = delivery.json()["body"]
    assert body.endswith("…") and text.startswith(body[:-1])


def test_it_counts_delivered_seen_and_failed(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.alice)
    bobs_phone, _ = subscribe(fake_push, cast.bob)
    fake_push.script(bobs_phone.endpoint, 410)
    broadcast = send(cast.warden, priority="urgent", group_ids=[cast.gold_group.pk, cast.abington_group.pk])
    assert selectors.broadcast_counts(broadcast=broadcast) == {
        "recipients": 3, "delivered": 0, "seen": 0, "failed": 0, "push_queued": 2,
    }

    services.deliver_due()
    services.broadcast_mark_delivered(user_id=cast.charlie.pk, broadcast_id=broadcast.pk)  # charlie's open app
    services.broadcast_acknowledge(user=cast.alice, broadcast_id=broadcast.pk)

    assert selectors.broadcast_counts(broadcast=broadcast) == {
        "recipients": 3, "delivered": 2, "seen": 1, "failed": 1, "push_queued": 0,
    }
    alice_row = BroadcastRecipient.objects.get(broadcast=broadcast, user=cast.alice)
    assert alice_row.delivered_via == "push"
    assert BroadcastRecipient.objects.get(broadcast=broadcast, user=cast.charlie).delivered_via == "socket"


def test_it_lets_only_recipients_acknowledge(cast: Cast) -> None:
    broadcast = send(cast.warden, street_ids=[cast.gold.pk])
    with pytest.raises(Exception, match="No such broadcast"):
        services.broadcast_acknowledge(user=cast.charlie, broadcast_id=broadcast.pk)
    row = services.broadcast_acknowledge(user=cast.bob, broadcast_id=broadcast.pk)
    assert row.seen_at is not None and row.delivered_via == "app"
    assert selectors.broadcasts_unseen_for(user=cast.bob) == []
    assert selectors.broadcasts_unseen_for(user=cast.alice) == [broadcast]


@pytest.mark.parametrize("role_user", ["alice", "bob", "officer", "police", "dpo"])
def test_it_refuses_broadcasts_from_anyone_but_wardens_and_admins(cast: Cast, role_user: str) -> None:
    with pytest.raises(PermissionDenied):
        send(getattr(cast, role_user), audience_all=True)
    assert not Broadcast.objects.exists()


def test_it_validates_the_broadcast(cast: Cast) -> None:
    for bad in (
        {"title": "", "audience_all": True},
        {"text": "x" * 2001, "audience_all": True},
        {"priority": "panic", "audience_all": True},
        {"roles": ["king"]},
        {},
        {"group_ids": [999999]},
        {"audience_all": True, "expires_at": timezone.now() - timedelta(minutes=1)},
    ):
        with pytest.raises(services.AlertsInvalid):
            send(cast.warden, **bad)


def test_it_expires_pushes_with_the_broadcast(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    send(cast.warden, street_ids=[cast.gold.pk], expires_at=timezone.now() + timedelta(minutes=30))
    services.deliver_due()
    assert 1700 <= fake_push.deliveries[0].ttl <= 1800


def _jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (64, 48), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    exif[0x8825] = {2: (52.0, 14.0, 0.0), 1: "N"}  # GPS IFD
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def test_it_stores_the_photo_re_encoded_without_exif(cast: Cast) -> None:
    original = _jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif()
    broadcast = send(cast.warden, street_ids=[cast.gold.pk], photo=original)
    with broadcast.photo.open("rb") as stored:
        image = Image.open(stored)
        assert image.format == "JPEG"
        assert not image.getexif()
        assert image.size == (48, 64)  # turned upright before the EXIF was dropped


def test_it_refuses_a_file_that_is_not_an_image(cast: Cast) -> None:
    with pytest.raises(services.AlertsInvalid, match="JPEG, PNG or WebP"):
        send(cast.warden, street_ids=[cast.gold.pk], photo=b"%PDF-1.7 not an image")


def test_it_audits_the_broadcast_without_its_text(cast: Cast) -> None:
    broadcast = send(cast.warden, street_ids=[cast.gold.pk])
    event = AuditEvent.objects.get(action="broadcast.create")
    assert (event.actor, event.object_id) == (cast.warden, str(broadcast.pk))
    assert event.detail == {"priority": "info", "recipients": 2, "pushes": 0, "via": "api"}


def test_it_broadcasts_from_the_command_line(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.alice)
    out = io.StringIO()
    call_command("broadcast", "--as", cast.warden.email, "--title", "Shoplifters", "--text", "Lock doors",
                 "--priority", "urgent", "--streets", "Gold Street", "--expires-in", "60", stdout=out)

    broadcast = Broadcast.objects.get()
    assert recipients(broadcast) == emails(cast.alice, cast.bob)
    assert (broadcast.priority, broadcast.author) == ("urgent", cast.warden)
    assert f"Broadcast {broadcast.pk} (urgent) to 2 people, 1 pushes queued" in out.getvalue()
    assert AuditEvent.objects.get(action="broadcast.create").detail["via"] == "cli"
    services.deliver_due()
    assert fake_push.deliveries[0].json()["title"] == "Shoplifters"


def test_it_refuses_command_line_broadcasts_from_staff_and_unknown_streets(cast: Cast) -> None:
    with pytest.raises(CommandError, match="not an active warden"):
        call_command("broadcast", "--as", cast.bob.email, "--title", "x", "--text", "y", "--all")
    with pytest.raises(CommandError, match="No street called 'Nowhere Lane'"):
        call_command("broadcast", "--as", cast.warden.email, "--title", "x", "--text", "y", "--streets", "Nowhere Lane")
    assert not Broadcast.objects.exists()


def test_it_does_not_collapse_the_pushes_of_two_broadcasts(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    first = send(cast.warden, street_ids=[cast.gold.pk])
    second = send(cast.warden, title="Second", street_ids=[cast.gold.pk])
    assert PushDelivery.objects.filter(broadcast=first).count() == 1
    assert PushDelivery.objects.filter(broadcast=second).count() == 1
