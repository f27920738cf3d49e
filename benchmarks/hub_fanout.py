"""Hub fan-out: one street group, N connected members, a sender at a fixed (open-loop) rate.

Every member is a real end-to-end encrypted client (chat.e2ee_client: its own device keys, the group key
wrapped to every device, each message signed, encrypted, verified and decrypted). Measures send-to-decrypted
latency percentiles over a real Daphne process and real WebSocket clients (all clients in this process, so
client crypto shares the 2 cores with the server), and the server's CPU time and resident memory. Runs on the embedded default
(SQLite + in-memory layer) unless DATABASE_URL / REDIS_URL are set.

    python -m benchmarks.hub_fanout --members 100 --rate 20 --messages 400
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_P95_MS = 250.0


def _proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MiB) of a process, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss_kib = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return cpu, rss_kib / 1024


def _setup_django(data_dir: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ntars.settings")
    os.environ["NTARS_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _make_members(count: int) -> tuple[int, list[str]]:
    """A group with `count` members; returns (group id, session cookies)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore

    from members.models import Agreement, AgreementAcceptance, Business, Role, Street, StreetGroup, User

    run = secrets.token_hex(3)  # fresh people and group each run, also on a reused PostgreSQL database
    street, _ = Street.objects.get_or_create(name=f"Bench Street {run}", slug=f"bench-street-{run}")
    group, _ = StreetGroup.objects.get_or_create(name=f"Bench Street {run}", kind=StreetGroup.Kind.STREET)
    group.streets.add(street)
    agreement, _ = Agreement.objects.get_or_create(kind=Agreement.Kind.DATA_SHARING, version=1,
                                                   defaults={"title": "DSA", "body": "x"})
    password = make_password(None)
    cookies = []
    for i in range(count):
        business, _ = Business.objects.get_or_create(
            name=f"Bench shop {i}", trading_address=f"{i} Bench Street {run}",
            defaults={"street": street, "kind": Business.Kind.LEVY_PAYER, "status": Business.Status.ACTIVE},
        )
        user, _ = User.objects.get_or_create(
            email=f"member{i}-{run}@bench.example",
            defaults={"full_name": f"Member {i}", "role": Role.STAFF, "business": business, "password": password},
        )
        AgreementAcceptance.objects.get_or_create(user=user, agreement=agreement)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        csrf = secrets.token_hex(16)  # any 32-character token: the API checks header against cookie
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}; {settings.CSRF_COOKIE_NAME}={csrf}")
    return group.pk, cookies


async def _run(
    url: str, server_pid: int, group: int, cookies: list[str], rate: float, messages: int, size: int
) -> dict[str, Any]:
    import uuid

    from chat import crypto
    from chat.client import HubClient
    from chat.e2ee_client import E2EEClient

    clients = []
    for cookie in cookies:
        device = str(uuid.uuid4())
        clients.append(E2EEClient(HubClient(url, cookie_header=cookie, device=device),
                                  keys=crypto.DeviceKeys.generate(), device_id=device, timeout=120))
    for client in clients:
        await client.register("benchmark")
    await asyncio.gather(*(c.connect(timeout=120) for c in clients))
    sender, receivers = clients[0], clients[1:]
    latencies: list[float] = []
    done = asyncio.Event()
    warm = asyncio.Event()
    warmed: set[int] = set()
    expected = messages * len(receivers)
    padding = "x" * max(0, size - 32)

    async def receive(index: int, client: E2EEClient) -> None:
        got = 0
        async for received in client.received():
            text = received.text
            if received.error or text is None:
                continue
            if text.startswith("warm-up"):
                warmed.add(index)
                if len(warmed) == len(receivers):
                    warm.set()
                continue
            latencies.append(time.perf_counter() - float(text[2:].split(" ", 1)[0]))
            got += 1
            if len(latencies) >= expected:
                done.set()
            if got >= messages:
                return

    tasks = [asyncio.ensure_future(receive(i, c)) for i, c in enumerate(receivers)]
    # The first message rotates the group key and every member fetches it: keep that out of the measurement.
    await sender.send_text(group, "warm-up: rotates the group key to every device")
    await asyncio.wait_for(warm.wait(), timeout=300)
    cpu_before, _ = _proc_stats(server_pid)
    start = time.perf_counter()
    sends = []
    for i in range(messages):
        # Open loop: each send starts at its scheduled time, whether or not earlier ones were acked.
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # wait-ok: pacing the open-loop sender, not waiting for a result
        sends.append(asyncio.ensure_future(sender.send_text(group, f"t={time.perf_counter():.6f} {padding}")))
    await asyncio.gather(*sends)
    await asyncio.wait_for(done.wait(), timeout=300)
    elapsed = time.perf_counter() - start
    cpu_after, rss = _proc_stats(server_pid)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": latencies[-1] * 1000,
            "deliveries": len(latencies), "elapsed": elapsed, "cpu": cpu_after - cpu_before, "rss": rss}


def run(members: int, rate: float, messages: int, size: int) -> list[dict[str, Any]]:
    data_dir = Path(tempfile.mkdtemp(prefix="ntars-bench-"))
    _setup_django(data_dir)
    group, cookies = _make_members(members + 1)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.servers import start_daphne

    server = start_daphne(data_dir / "server", worker=False, extra_env={"HUB_RATE_PER_SECOND": "1000",
                                                                       "HUB_RATE_BURST": "1000"})
    try:
        result = asyncio.run(_run(server.url, server.process.pid, group, cookies, rate, messages, size))
    finally:
        server.stop()
    layer = "Redis" if os.environ.get("REDIS_URL") else "in-memory"
    db = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    label = f"hub fan-out, {members} members, {rate:g} msg/s x {messages}, {size} B ({db}, {layer} layer)"
    return [
        {"name": f"{label}: delivery p50 / p95 / p99 / max",
         "value": f"{result['p50']:.1f} / {result['p95']:.1f} / {result['p99']:.1f} / {result['max']:.1f}",
         "unit": "ms", "target": f"p95 < {TARGET_P95_MS:.0f} ms", "met": result["p95"] < TARGET_P95_MS},
        {"name": f"{label}: deliveries", "value": f"{result['deliveries'] / result['elapsed']:.0f}",
         "unit": "per s", "target": "-", "met": None},
        {"name": f"{label}: server CPU while sending / RSS after", "value": f"{result['cpu']:.1f} s / {result['rss']:.0f} MiB",
         "unit": "", "target": "-", "met": None},
    ]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args(argv if argv is not None else [])
    return run(args.members, args.rate, args.messages, args.size)


if __name__ == "__main__":
    for row in main(sys.argv[1:]):
        print(row)
