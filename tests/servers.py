"""Real server processes for tests: Daphne (`manage.py serve`) in a subprocess, sharing the test database.

Fixture `live_server_proc` gives a running server; `daphne_factory` starts more (for cross-process tests) and
can kill them with SIGKILL. Readiness is the server's own "NTARS ready on ..." line: no sleeping.
"""

from __future__ import annotations

import email
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parent.parent
READY_PREFIX = "NTARS ready on "


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url_for_subprocess() -> str:
    """A DATABASE_URL naming the database this test process is using right now."""
    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        name = str(s["NAME"])
        if "memory" in name:
            raise RuntimeError("a server subprocess cannot share an in-memory SQLite test database")
        return f"sqlite:///{name}"
    user = quote(s.get("USER") or "")
    password = quote(s.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgres://{auth}{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


@dataclass
class DaphneProcess:
    port: int
    data_dir: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when a machine dies."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def outbox(self) -> list[Message]:
        """Emails the server sent (file email backend of the embedded default), oldest first."""
        folder = self.data_dir / "outbox"
        if not folder.is_dir():
            return []
        messages: list[Message] = []
        for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns):
            # The file backend separates messages with a line of dashes.
            for chunk in path.read_text(encoding="utf-8").split("-" * 79):
                if chunk.strip():
                    messages.append(email.message_from_string(chunk.strip()))
        return messages


def start_daphne(
    data_dir: Path, *, port: int | None = None, worker: bool = True, extra_env: dict[str, str] | None = None,
    timeout: float = 60,
) -> DaphneProcess:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "DJANGO_SETTINGS", "TEST_DATABASE_NAME"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "ntars.settings",
            "NTARS_TESTING": "false",
            "DATABASE_URL": database_url_for_subprocess(),
            "NTARS_DATA_DIR": str(data_dir),
            "SITE_URL": f"http://127.0.0.1:{port}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            "WORKER_TICK_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra_env or {})
    args = [sys.executable, "manage.py", "serve", "--port", str(port)]
    if not worker:
        args.append("--no-worker")
    process = subprocess.Popen(  # noqa: S603
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    server = DaphneProcess(port=port, data_dir=data_dir, process=process)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            server.kill()
            raise RuntimeError("Daphne did not become ready:\n" + "".join(server.output)) from None
        if line is None:
            raise RuntimeError("Daphne exited before it was ready:\n" + "".join(server.output))
        if line.startswith(READY_PREFIX):
            return server


@pytest.fixture
def daphne_factory(transactional_db: None, tmp_path: Path) -> Iterator[object]:
    """Start Daphne processes on demand: `daphne_factory(worker=False, extra_env={...})`."""
    started: list[DaphneProcess] = []

    def factory(**kwargs: object) -> DaphneProcess:
        server = start_daphne(tmp_path / f"server{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def live_server_proc(daphne_factory: object) -> DaphneProcess:
    """One real Daphne server on a free port, sharing this test's database."""
    return daphne_factory()  # type: ignore[operator]
