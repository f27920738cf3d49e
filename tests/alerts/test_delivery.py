"""The delivery engine against the fake push service: encryption, VAPID, retries, pruning, quiet hours."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from alerts import push, services
from alerts.models import AlertPrefs, PushDelivery, PushSubscription
from members.jobs import registered_jobs
from tests.alerts.conftest import subscribe
from tests.alerts.fake_push import FakePushService, Reply, new_keys
from tests.cast import Cast

LONDON = ZoneInfo("Europe/London")
PAYLOAD = {"type": "chat.urgent", "group": 7, "message": 1234}


def queue(user_ids: list[int], **options: Any) -> int:
    return services.push_to_users(user_ids=user_ids, payload=options.pop("payload", PAYLOAD), **options)


def test_it_delivers_an_encrypted_payload_that_decrypts_and_fits_4096_bytes(cast: Cast, fake_push: FakePushService) -> None:
    device, stored = subscribe(fake_push, cast.bob)
    assert queue([cast.bob.pk], urgency="high", ttl=600, topic="group-7") == 1

    assert services.deliver_due() == {"claimed": 1, "sent": 1}

    [delivery] = fake_push.deliveries
    assert fake_push.errors == []
    assert delivery.json() == PAYLOAD
    assert delivery.body_size <= 4096
    assert delivery.ttl == 600
    assert delivery.urgency == "high"
    assert delivery.topic == "group-7"
    assert delivery.claims["sub"] == "mailto:alerts-test@northamptonbid.example"
    row = PushDelivery.objects.get()
    assert (row.state, row.last_status, row.attempts) == ("sent", 201, 1)
    stored.refresh_from_db()
    assert stored.last_success_at is not None


def test_it_fills_exactly_4096_bytes_with_the_largest_payload(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    filler = "x" * (push.MAX_PAYLOAD_BYTES - len(json.dumps({"pad": ""}, separators=(",", ":"))))
    queue([cast.bob.pk], payload={"pad": filler})

    services.deliver_due()

    [delivery] = fake_push.deliveries
    assert delivery.body_size == 4096
    assert delivery.json() == {"pad": filler}


def test_it_refuses_a_payload_too_large_before_queueing(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    with pytest.raises(push.PushPayloadTooLarge, match="at most 3993"):
        queue([cast.bob.pk], payload={"pad": "x" * 4000})
    assert not PushDelivery.objects.exists()


@pytest.mark.parametrize("status", [404, 410])
def test_it_prunes_the_subscription_when_the_push_service_says_gone(
    cast: Cast, fake_push: FakePushService, status: int
) -> None:
    device, stored = subscribe(fake_push, cast.bob)
    subscribe(fake_push, cast.alice)
    fake_push.script(device.endpoint, status)
    queue([cast.bob.pk, cast.alice.pk])

    counts = services.deliver_due()

    assert counts == {"claimed": 2, "sent": 1, "gone": 1}
    assert not PushSubscription.objects.filter(pk=stored.pk).exists()
    assert PushSubscription.objects.filter(user=cast.alice).exists()
    gone = PushDelivery.objects.get(state="gone")
    assert (gone.last_status, gone.subscription_id, gone.user_id) == (status, None, cast.bob.pk)


def test_it_retries_a_503_after_the_stated_retry_after_seconds(cast: Cast, fake_push: FakePushService) -> None:
    device, _ = subscribe(fake_push, cast.bob)
    fake_push.script(device.endpoint, Reply(503, {"Retry-After": "120"}))
    queue([cast.bob.pk])
    with time_machine.travel(datetime(2026, 11, 26, 10, 0, tzinfo=LONDON), tick=False) as traveller:
        assert services.deliver_due() == {"claimed": 1, "retry": 1}
        row = PushDelivery.objects.get()
        assert row.state == "queued"
        assert row.next_attempt_at == timezone.now() + timedelta(seconds=120)

        traveller.shift(119)
        assert services.deliver_due() == {}
        traveller.shift(2)
        assert services.deliver_due() == {"claimed": 1, "sent": 1}

    assert [a.status for a in fake_push.attempts] == [503, 201]
    assert fake_push.errors == []


def test_it_honours_retry_after_given_as_an_http_date(cast: Cast, fake_push: FakePushService) -> None:
    device, _ = subscribe(fake_push, cast.bob)
    start = datetime(2026, 11, 26, 10, 0, tzinfo=LONDON)
    fake_push.script(device.endpoint, Reply(503, {"Retry-After": format_datetime((start + timedelta(minutes=10)).astimezone(UTC), usegmt=True)}))
    queue([cast.bob.pk])
    with time_machine.travel(start, tick=False) as traveller:
        services.deliver_due()
        assert PushDelivery.objects.get().next_attempt_at == start + timedelta(minutes=10)
        traveller.shift(600)
        assert services.deliver_due()["sent"] == 1


def test_it_backs_off_exponentially_on_429(cast: Cast, fake_push: FakePushService) -> None:
    device, _ = subscribe(fake_push, cast.bob)
    fake_push.script(device.endpoint, 429, 429)
    queue([cast.bob.pk])
    with time_machine.travel(datetime(2026, 11, 26, 10, 0, tzinfo=LONDON), tick=False) as traveller:
        delays = []
        for _ in range(2):
            services.deliver_due()
            row = PushDelivery.objects.get()
            delay = (row.next_attempt_at - timezone.now()).total_seconds()
            delays.append(delay)
            traveller.shift(delay)
        assert services.deliver_due()["sent"] == 1
    assert 12 <= delays[0] <= 18  # 15 s +-20%
    assert 24 <= delays[1] <= 36  # doubled
    assert [a.status for a in fake_push.attempts] == [429, 429, 201]


def test_it_gives_up_after_the_last_attempt(cast: Cast, fake_push: FakePushService) -> None:
    device, stored = subscribe(fake_push, cast.bob)
    fake_push.script(device.endpoint, *([500] * services.MAX_ATTEMPTS))
    queue([cast.bob.pk])
    with time_machine.travel(datetime(2026, 11, 26, 10, 0, tzinfo=LONDON), tick=False) as traveller:
        for _ in range(services.MAX_ATTEMPTS):
            services.deliver_due()
            traveller.shift(services.BACKOFF_MAX_SECONDS * 2)
    row = PushDelivery.objects.get()
    assert (row.state, row.attempts, row.last_status) == ("failed", services.MAX_ATTEMPTS, 500)
    stored.refresh_from_db()
    assert stored.failure_count == 1


@pytest.mark.parametrize("endpoint", [
    "https://10.0.0.5/push/abc",
    "https://192.168.1.20/push/abc",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/push/abc",
    "https://127.0.0.2:8443/push/abc",
    "http://push.example.com/push/abc",
    "https://user:pw@push.example.com/push/abc",
    "ftp://push.example.com/x",
])
def test_it_refuses_private_and_non_https_endpoints(cast: Cast, endpoint: str) -> None:
    _, p256dh, auth = new_keys()
    with pytest.raises(services.AlertsInvalid, match="endpoint refused"):
        services.subscription_save(user=cast.bob, endpoint=endpoint, p256dh=p256dh, auth=auth)
    assert not PushSubscription.objects.exists()


def test_it_allows_private_endpoints_only_when_configured(cast: Cast, settings: SettingsWrapper) -> None:
    settings.PUSH_ALLOW_PRIVATE_ENDPOINTS = True
    assert push.endpoint_refusal("https://10.0.0.5/push/abc") is None
    assert push.endpoint_refusal("http://10.0.0.5/push/abc") == "push endpoints must use https"
    settings.PUSH_ALLOW_PRIVATE_ENDPOINTS = False
    settings.PUSH_ENDPOINT_ALLOWLIST = ["10.0.0.5"]
    assert push.endpoint_refusal("https://10.0.0.5/push/abc") is None
    assert push.endpoint_refusal("https://10.0.0.6/push/abc") is not None


def test_it_rechecks_the_endpoint_when_sending(cast: Cast, fake_push: FakePushService, settings: SettingsWrapper) -> None:
    subscribe(fake_push, cast.bob)
    queue([cast.bob.pk])
    settings.PUSH_ENDPOINT_ALLOWLIST = []

    assert services.deliver_due() == {"claimed": 1, "failed": 1}

    assert fake_push.attempts == []
    assert PushDelivery.objects.get().last_error == "endpoint refused"


def test_it_signs_fresh_vapid_claims_for_every_send(
    cast: Cast, fake_push: FakePushService, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims_seen: list[dict[str, Any]] = []
    real = push.webpush_async

    async def spy(*args: Any, **kwargs: Any) -> Any:
        claims_seen.append(kwargs["vapid_claims"])
        return await real(*args, **kwargs)

    monkeypatch.setattr(push, "webpush_async", spy)
    with FakePushService(vapid_public_key=push.vapid_public_key()) as other:
        # Same user, two push services: each JWT must name its own service as audience.
        first, _ = subscribe(fake_push, cast.bob)
        second, _ = subscribe(other, cast.bob)
        subscribe(fake_push, cast.alice)
        queue([cast.bob.pk, cast.alice.pk])

        assert services.deliver_due()["sent"] == 3

        assert fake_push.errors == [] and other.errors == []
        assert [d.claims["aud"] for d in other.deliveries] == [other.origin]
        assert {d.claims["aud"] for d in fake_push.deliveries} == {fake_push.origin}
        assert {claims["aud"] for claims in claims_seen} == {fake_push.origin, other.origin}
    assert len({id(claims) for claims in claims_seen}) == 3


def test_it_claims_rows_with_compare_and_set(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    subscribe(fake_push, cast.alice)
    queue([cast.bob.pk, cast.alice.pk])
    with time_machine.travel(datetime(2026, 11, 26, 10, 0, tzinfo=LONDON), tick=False) as traveller:
        token, rows = services.push_deliveries_claim(limit=10)
        assert len(rows) == 2
        # A second worker finds nothing: the rows are taken.
        assert services.push_deliveries_claim(limit=10) == ("", [])
        assert services.deliver_due() == {}
        # The first worker died: after the lease the rows are due again, for exactly one worker.
        traveller.shift(services.CLAIM_LEASE.total_seconds())
        assert services.deliver_due() == {"claimed": 2, "sent": 2}
    assert len(fake_push.deliveries) == 2
    assert set(PushDelivery.objects.values_list("attempts", flat=True)) == {2}


def test_it_leaves_a_row_to_the_worker_that_took_it_over(
    cast: Cast, fake_push: FakePushService, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscribe(fake_push, cast.bob)
    queue([cast.bob.pk])
    real_send = push.send_many
    calls: list[str] = []

    def slow_worker_send(items: Any, **kwargs: Any) -> list[push.Outcome]:
        if calls:
            return real_send(items, **kwargs)
        calls.append("a")
        # Worker A hangs past its lease; worker B takes the row over and sends it.
        traveller.shift(services.CLAIM_LEASE.total_seconds() + 1)
        assert services.deliver_due() == {"claimed": 1, "sent": 1}
        return [push.Outcome(item.id, 503, "60") for item in items]

    monkeypatch.setattr(push, "send_many", slow_worker_send)
    with time_machine.travel(datetime(2026, 11, 26, 10, 0, tzinfo=LONDON), tick=False) as traveller:
        services.deliver_due()
    row = PushDelivery.objects.get()
    # A's late 503 did not put the row back in the queue: B's outcome stands.
    assert (row.state, row.last_status, row.attempts) == ("sent", 201, 2)
    assert len(fake_push.deliveries) == 1


def _quiet(user_id: int, start: str, end: str, **extra: Any) -> AlertPrefs:
    return AlertPrefs.objects.create(user_id=user_id, quiet_start=time.fromisoformat(start),
                                     quiet_end=time.fromisoformat(end), **extra)


def test_it_holds_non_urgent_pushes_until_quiet_hours_end(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    subscribe(fake_push, cast.alice)
    _quiet(cast.bob.pk, "22:00", "07:00")
    with time_machine.travel(datetime(2026, 11, 26, 23, 30, tzinfo=LONDON), tick=False) as traveller:
        queue([cast.bob.pk, cast.alice.pk], urgency="normal")
        assert services.deliver_due() == {"claimed": 1, "sent": 1}  # alice has no quiet hours
        held = PushDelivery.objects.get(user=cast.bob)
        assert held.next_attempt_at == datetime(2026, 11, 27, 7, 0, tzinfo=LONDON)
        traveller.move_to(datetime(2026, 11, 27, 6, 59, tzinfo=LONDON))
        assert services.deliver_due() == {}
        traveller.move_to(datetime(2026, 11, 27, 7, 0, tzinfo=LONDON))
        assert services.deliver_due() == {"claimed": 1, "sent": 1}


def test_it_sends_urgent_pushes_during_quiet_hours(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    _quiet(cast.bob.pk, "00:00", "23:59")
    with time_machine.travel(datetime(2026, 11, 26, 12, 0, tzinfo=LONDON), tick=False):
        queue([cast.bob.pk], urgency="high")
        assert services.deliver_due() == {"claimed": 1, "sent": 1}
    assert fake_push.deliveries[0].urgency == "high"


def test_it_computes_quiet_hours_within_a_day_and_across_midnight(db: None) -> None:
    day = AlertPrefs(quiet_start=time(13, 0), quiet_end=time(14, 0))
    night = AlertPrefs(quiet_start=time(22, 0), quiet_end=time(7, 0))
    at = lambda h, m=0: datetime(2026, 7, 1, h, m, tzinfo=LONDON)  # noqa: E731
    assert services.quiet_until(prefs=day, now=at(13, 30)) == at(14)
    assert services.quiet_until(prefs=day, now=at(14)) is None
    assert services.quiet_until(prefs=night, now=at(3)) == at(7)
    assert services.quiet_until(prefs=night, now=at(12)) is None
    assert services.quiet_until(prefs=AlertPrefs(), now=at(3)) is None


def test_it_skips_muted_groups_unless_urgent(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    subscribe(fake_push, cast.alice)
    services.prefs_update(user=cast.bob, quiet_start=None, quiet_end=None, no_preview=False,
                          muted_group_ids=[cast.gold_group.pk])
    group = cast.gold_group.pk

    assert queue([cast.bob.pk, cast.alice.pk], group_id=group, urgency="normal") == 1
    assert queue([cast.bob.pk, cast.alice.pk], group_id=group, urgency="high") == 2
    assert queue([cast.bob.pk, cast.alice.pk], group_id=cast.abington_group.pk, urgency="low") == 2


def test_it_collapses_a_waiting_push_with_the_same_topic(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    _quiet(cast.bob.pk, "22:00", "07:00")
    with time_machine.travel(datetime(2026, 11, 26, 23, 0, tzinfo=LONDON), tick=False) as traveller:
        queue([cast.bob.pk], payload={"unread": 1}, topic="unread")
        queue([cast.bob.pk], payload={"unread": 2}, topic="unread")
        queue([cast.bob.pk], payload={"other": 1}, topic="other")
        traveller.move_to(datetime(2026, 11, 27, 7, 0, tzinfo=LONDON))
        services.deliver_due()
    assert sorted(json.dumps(d.json()) for d in fake_push.deliveries) == ['{"other": 1}', '{"unread": 2}']


def test_it_drops_a_push_that_expired_while_held(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    _quiet(cast.bob.pk, "22:00", "07:00")
    with time_machine.travel(datetime(2026, 11, 26, 23, 0, tzinfo=LONDON), tick=False) as traveller:
        queue([cast.bob.pk], expires_at=timezone.now() + timedelta(hours=1))
        traveller.move_to(datetime(2026, 11, 27, 7, 0, tzinfo=LONDON))
        assert services.deliver_due() == {"claimed": 1, "failed": 1}
    assert fake_push.attempts == []


def test_it_validates_urgency_topic_and_json(cast: Cast) -> None:
    with pytest.raises(services.AlertsInvalid):
        queue([cast.bob.pk], urgency="critical")
    with pytest.raises(ValueError, match="topic"):
        queue([cast.bob.pk], topic="not a valid topic!")
    with pytest.raises(services.AlertsInvalid, match="JSON"):
        queue([cast.bob.pk], payload=b"not json")


def test_it_does_not_push_to_disabled_users(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    cast.bob.is_active = False
    cast.bob.save(update_fields=["is_active"])
    assert queue([cast.bob.pk]) == 0


def test_it_runs_as_the_registered_background_job(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    queue([cast.bob.pk])
    job = registered_jobs()["alerts.deliver_push"]

    result = job.func()  # run_job() would also close the test's database connection

    assert result == {"claimed": 1, "sent": 1}
    assert len(fake_push.deliveries) == 1


def test_it_purges_finished_rows_after_a_week(cast: Cast, fake_push: FakePushService) -> None:
    subscribe(fake_push, cast.bob)
    queue([cast.bob.pk])
    services.deliver_due()
    assert services.push_deliveries_purge() == 0
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert services.push_deliveries_purge() == 1
