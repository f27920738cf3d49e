"""Run the background jobs (retention purge, push delivery, ...) as a long-running process."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from members.jobs import registered_jobs, run_forever, run_job


class Command(BaseCommand):
    help = "Run NTARS background jobs until stopped (SIGTERM/SIGINT)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="run every job once and exit")

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        jobs = registered_jobs()
        self.stdout.write(f"NTARS worker: {', '.join(sorted(jobs)) or 'no jobs'}")
        if once:
            for job in jobs.values():
                self.stdout.write(f"{job.name}: {run_job(job)}")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        run_forever(stop, settings.WORKER_TICK_SECONDS)
