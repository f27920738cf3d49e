"""Serve HTTP and WebSockets through Daphne, with the background worker in the same event loop.

`manage.py serve --port 0` picks a free port; the ready line names the real one, so tests and scripts can
wait on it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run NTARS on Daphne (HTTP + WebSocket) with the in-process background worker."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--no-worker", action="store_true", help="run the worker separately (run_worker)")
        parser.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-For/-Proto")

    def handle(self, *args: Any, host: str, port: int, no_worker: bool, proxy_headers: bool, **options: Any) -> None:
        # Importing daphne.server installs Twisted's asyncio reactor: it must come before any other reactor use.
        from channels.routing import get_default_application
        from daphne.server import Server
        from twisted.internet import reactor

        from members.jobs import registered_jobs, run_in_loop

        stop = asyncio.Event()
        server = Server(
            application=get_default_application(),
            endpoints=[f"tcp:port={port}:interface={host}"],
            signal_handlers=True,
            # Frames above the hub's own limit are refused by Daphne before they reach the consumer.
            websocket_max_message_size=settings.HUB_MAX_FRAME_BYTES * 2,
            websocket_max_frame_size=settings.HUB_MAX_FRAME_BYTES * 2,
            proxy_forwarded_address_header="X-Forwarded-For" if proxy_headers else None,
            proxy_forwarded_port_header="X-Forwarded-Port" if proxy_headers else None,
            proxy_forwarded_proto_header="X-Forwarded-Proto" if proxy_headers else None,
            application_close_timeout=5,
        )

        def announce() -> None:
            if not server.listening_addresses:
                reactor.callLater(0.05, announce)  # listening is still being set up
                return
            bound_host, bound_port = server.listening_addresses[0]
            if not no_worker:
                jobs = ", ".join(sorted(registered_jobs())) or "none"
                asyncio.ensure_future(run_in_loop(stop, settings.WORKER_TICK_SECONDS))
                self.stdout.write(f"Background worker running in-process (jobs: {jobs})")
            self.stdout.write(f"NTARS ready on http://{bound_host}:{bound_port}")
            sys.stdout.flush()

        reactor.callWhenRunning(announce)
        reactor.addSystemEventTrigger("before", "shutdown", stop.set)
        server.run()
        # The reactor has stopped: every socket is closed and every transaction has committed or rolled back.
        # A database thread still trying to publish into the stopped loop would otherwise hold the exit for ever.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
