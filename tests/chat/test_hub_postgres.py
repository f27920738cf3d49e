"""Per-group seqs on PostgreSQL with concurrent writers (threads and processes): gapless, increasing, unique."""

from __future__ import annotations

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

    def write(n: int) -> list[int]:
        start.wait()
        try:
            return [
                message_send(user_id=senders[n % len(senders)], group_id=cast.gold_group.pk, client_id=uuid.uuid4(),
                             envelope=b"sealed").seq
                for _ in range(each)
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

    def write(_: int) -> Stored:
        start.wait()
        try:
            return message_send(user_id=cast.alice.pk, group_id=cast.gold_group.pk, client_id=client_id,
                                envelope=b"sealed")
        finally:
            close_old_connections()

    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(write, range(writers)))
    assert {r.seq for r in results} == {1}
    assert [r.duplicate for r in results].count(False) == 1
    # The next message gets seq 2: the losers' increments were rolled back with their transactions.
    assert message_send(user_id=cast.bob.pk, group_id=cast.gold_group.pk, client_id=uuid.uuid4(),
                        envelope=b"x").seq == 2
    assert_stream_is_gapless(cast, 2)


WRITER = """
import json, sys, threading, uuid
import django
django.setup()
from django.db import close_old_connections
from chat.services import message_send
group, users, threads, each = int(sys.argv[1]), [int(u) for u in sys.argv[2].split(",")], int(sys.argv[3]), int(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()  # "go": every process starts writing at once
out = []
def write(n):
    for _ in range(each):
        out.append(message_send(user_id=users[n % len(users)], group_id=group, client_id=uuid.uuid4(),
                                envelope=b"sealed").seq)
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
    users = f"{cast.alice.pk},{cast.bob.pk},{cast.warden.pk}"
    children = [
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", WRITER, str(cast.gold_group.pk), users, str(threads), str(each)],
            cwd=servers.REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for _ in range(processes)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
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
