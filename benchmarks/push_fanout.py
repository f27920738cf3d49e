"""Web Push fan-out: one urgent alert to 5,000 subscribed devices through the real delivery engine.

The fake push service (tests/alerts/fake_push.py) runs in its own process and checks every request's VAPID
JWT, TTL, Urgency and body size, as a real push service would; it does not decrypt (the tests prove that).
The sender is this process: queueing (`push_to_users`) and the delivery engine (`deliver_all_due`) against a
throw-away database. Reported: time from queueing until the push service accepted the last push, and this
process's CPU time (user + system, resource.getrusage). Target on a 2-core machine: 5,000 within 10 s.

Run alone: `python -m benchmarks.push_fanout` (BENCH_PUSH_N, PUSH_CONCURRENCY, BENCH_PUSH_BATCH to tune).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

TARGET_SECONDS = 10.0
REPO = Path(__file__).resolve().parent.parent


def _start_fake_push(vapid_public_key: str) -> tuple[subprocess.Popen[str], str]:
    """The fake push service in its own process; its readiness line names its origin."""
    from tests.alerts.fake_push import READY_PREFIX

    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "tests.alerts.fake_push", vapid_public_key, "--accept-any", "--no-decrypt"],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(READY_PREFIX):
        process.kill()
        raise RuntimeError(f"fake push service did not start: {line!r}")
    return process, line[len(READY_PREFIX):].strip()


def _stats(origin: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{origin}/_stats", timeout=10) as response:  # noqa: S310 (loopback)
        return json.loads(response.read())


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(count: int, batch: int, concurrency: int) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ntars.settings")
    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import override_settings

    from alerts import push, services
    from alerts.models import PushDelivery, PushSubscription
    from members.models import Business, Role, Street, User
    from tests.alerts.fake_push import new_keys

    key_pem = push.vapid_private_pem(push.vapid_private_key_generate()).decode()
    workdir = Path(tempfile.mkdtemp(prefix="ntars-bench-push-"))
    overrides = override_settings(
        VAPID_PRIVATE_KEY=key_pem, VAPID_PUBLIC_KEY="", PUSH_ENDPOINT_ALLOWLIST=["127.0.0.1"],
        PUSH_CONCURRENCY=concurrency, DATA_DIR=workdir,
    )
    overrides.enable()
    fake, origin = _start_fake_push(push.vapid_public_key())
    if connection.vendor == "sqlite":
        # A file like the embedded default's, not an in-memory database.
        settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = str(workdir / "bench.sqlite3")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        street = Street.objects.create(name="Bench Street", slug="bench-street")
        business = Business.objects.create(name="Bench Shop", trading_address="1 Bench Street", street=street,
                                           kind=Business.Kind.VOLUNTARY, status=Business.Status.ACTIVE)
        users = User.objects.bulk_create(
            [User(email=f"bench{i}@bench.example", full_name=f"Bench {i}", role=Role.STAFF, business=business,
                  password="!") for i in range(count)],  # noqa: S106 (unusable password marker)
            batch_size=1000,
        )
        _, p256dh, auth = new_keys()
        PushSubscription.objects.bulk_create(
            [PushSubscription(user=user, endpoint=f"{origin}/push/bench-{user.pk}", p256dh=p256dh, auth=auth)
             for user in users],
            batch_size=1000,
        )
        payload = {"type": "alert.broadcast", "id": 1, "priority": "urgent", "url": "/alerts/broadcasts/1",
                   "title": "Shoplifters on Gold Street", "body": "Group of 6 heading north, lock doors. " * 4}
        user_ids = [user.pk for user in users]

        cpu_before, started = _cpu_seconds(), time.time()
        queued = services.push_to_users(user_ids=user_ids, payload=payload, urgency="high", topic="bench")
        queued_at = time.time()
        totals: dict[str, int] = {}
        while PushDelivery.objects.filter(state=PushDelivery.State.QUEUED).exists():
            for key, value in services.deliver_all_due(limit=batch, max_seconds=120).items():
                totals[key] = totals.get(key, 0) + value
            if time.time() - started > 300:
                break
        recorded_at = time.time()
        cpu = _cpu_seconds() - cpu_before
        stats = _stats(origin)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        fake.terminate()
        fake.wait(10)
        overrides.disable()
    last = (stats["last_accepted_at"] or recorded_at) - started
    return {
        "count": count, "queued": queued, "accepted": stats["accepted"], "errors": stats["errors"],
        "first_error": stats["first_error"], "max_body": stats["max_body"], "queue_seconds": queued_at - started,
        "last_accepted_seconds": last, "recorded_seconds": recorded_at - started, "cpu_seconds": cpu,
        "totals": totals, "batch": batch, "concurrency": concurrency, "service_cpu_seconds": stats["cpu_seconds"],
    }


def main() -> list[dict[str, Any]]:
    count = int(os.environ.get("BENCH_PUSH_N", "5000"))
    batch = int(os.environ.get("BENCH_PUSH_BATCH", "1000"))
    concurrency = int(os.environ.get("PUSH_CONCURRENCY", "32"))
    r = run(count, batch, concurrency)
    ok = r["accepted"] == count and r["errors"] == 0
    print(
        f"push fan-out: {r['accepted']}/{count} accepted, {r['errors']} rejected, queued in {r['queue_seconds']:.2f} s, "
        f"last accepted at {r['last_accepted_seconds']:.2f} s, recorded at {r['recorded_seconds']:.2f} s, "
        f"sender CPU {r['cpu_seconds']:.2f} s, fake push service CPU {r['service_cpu_seconds']:.2f} s, largest body {r['max_body']} B, batch {batch}, "
        f"concurrency {concurrency}" + (f"; first rejection: {r['first_error']}" if r["first_error"] else ""),
        file=sys.stderr,
    )
    return [
        {"name": f"Web Push fan-out: {count:,} devices, until the last push is accepted",
         "value": f"{r['last_accepted_seconds']:.2f}", "unit": "s", "target": f"<= {TARGET_SECONDS:.0f} s",
         "met": ok and r["last_accepted_seconds"] <= TARGET_SECONDS},
        {"name": f"Web Push fan-out: sender CPU for {count:,} pushes (queue + encrypt + sign + send + record)",
         "value": f"{r['cpu_seconds']:.2f}", "unit": "s", "target": "-", "met": None},
    ]


if __name__ == "__main__":
    for row in main():
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        print(f"| {row['name']} | {row['value']} {row['unit']} | {row['target']} | {met} |")
