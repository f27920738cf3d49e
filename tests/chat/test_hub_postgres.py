"""Per-group seqs on PostgreSQL with concurrent writers (threads and processes): gapless, increasing, unique."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import close_old_connections, connection

from chat.models import GroupSequence, Message
from chat.services import Stored, message_send
from tests import servers
from tests.cast import Cast
from tests.chat.test_hub_kit import kit_device, seal

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def postgres_only() -> None:
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.skip("needs DATABASE_URL=postgres://... (CI sets it)")
    assert connection.vendor == "postgresql"


def assert_stream_is_gapless(cast: Cast, expected: int) -> None:
    stored = list(Message.objects.filter(group=cast.gold_group).order_by("seq").values_list("seq", flat=True))
    assert stored == list(range(1, expected + 1))
    assert GroupSequence.objects.get(pk=cast.gold_group.pk).last_seq == expected


def test_it_hands_out_gapless_seqs_to_concurrent_threads(cast: Cast) -> None:
    writers, each = 8, 20
    start = threading.Barrier(writers)
    senders = [cast.alice.pk, cast.bob.pk, cast.warden.pk]
    sealed = {n: [seal(senders[n % len(senders)], cast.gold_group.pk) for _ in range(each)] for n in range(writers)}

    def write(n: int) -> list[int]:
        sender = senders[n % len(senders)]
        start.wait()
        try:
            return [
                message_send(user_id=sender, group_id=cast.gold_group.pk, client_id=uuid.uuid4(),
                             envelope=envelope, device=kit_device(sender)).seq
                for envelope in sealed[n]
            ]
        finally:
            close_old_connections()

    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(write, range(writers)))
    for seqs in results:
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # each writer sees its seqs increase
    assert sorted(s for seqs in results for s in seqs) == list(range(1, writers * each + 1))
    assert_stream_is_gapless(cast, writers * each)


def test_it_stores_a_send_retried_concurrently_once_without_burning_a_seq(cast: Cast) -> None:
    writers = 8
    start = threading.Barrier(writers)
    client_id = uuid.uuid4()
    envelope, device = seal(cast.alice.pk, cast.gold_group.pk), kit_device(cast.alice.pk)

    def write(_: int) -> Stored:
        start.wait()
        try:
            return message_send(user_id=cast.alice.pk, group_id=cast.gold_group.pk, client_id=client_id,
                                envelope=envelope, device=device)
        finally:
            close_old_connections()

    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(write, range(writers)))
    assert {r.seq for r in results} == {1}
    assert [r.duplicate for r in results].count(False) == 1
    # The next message gets seq 2: the losers' increments were rolled back with their transactions.
    assert message_send(user_id=cast.bob.pk, group_id=cast.gold_group.pk, client_id=uuid.uuid4(),
                        envelope=seal(cast.bob.pk, cast.gold_group.pk), device=kit_device(cast.bob.pk)).seq == 2
    assert_stream_is_gapless(cast, 2)


WRITER = """
import base64, json, sys, threading, uuid
import django
django.setup()
from django.db import close_old_connections
from chat.services import message_send
group, threads = int(sys.argv[1]), int(sys.argv[2])
print("ready", flush=True)
# One line of work: per thread, [user id, device, [base64 envelopes]]; then "go": every process starts at once.
work = json.loads(sys.stdin.readline())
sys.stdin.readline()
out = []
def write(n):
    user, device, envelopes = work[n]
    for envelope in envelopes:
        out.append(message_send(user_id=user, group_id=group, client_id=uuid.uuid4(), device=device,
                                envelope=base64.b64decode(envelope)).seq)
    close_old_connections()
workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
[w.start() for w in workers]
[w.join() for w in workers]
print(json.dumps(out), flush=True)
"""


def test_it_hands_out_gapless_seqs_to_concurrent_processes(cast: Cast) -> None:
    processes, threads, each = 3, 3, 15
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ntars.settings", "DATABASE_URL": servers.database_url_for_subprocess(),
           "NTARS_TESTING": "false", "LOG_LEVEL": "WARNING"}
    env.pop("TEST_DATABASE_NAME", None)
    users = [cast.alice.pk, cast.bob.pk, cast.warden.pk]

    def work() -> str:
        return json.dumps([
            [users[n % 3], kit_device(users[n % 3]),
             [base64.b64encode(seal(users[n % 3], cast.gold_group.pk)).decode() for _ in range(each)]]
            for n in range(threads)
        ])

    children = [
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", WRITER, str(cast.gold_group.pk), str(threads)],
            cwd=servers.REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for _ in range(processes)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert child.stdin is not None
        child.stdin.write(work() + "\n")
        child.stdin.flush()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    seqs: list[int] = []
    for child in children:
        output, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        seqs += json.loads(output.strip().splitlines()[-1])
    total = processes * threads * each
    assert sorted(seqs) == list(range(1, total + 1))
    assert_stream_is_gapless(cast, total)
