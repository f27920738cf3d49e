"""Background jobs: a tiny registry of periodic functions and the worker that runs them.

Apps register jobs in their own `jobs.py` with `@periodic(...)`; the worker imports every app's `jobs` module.
The same code runs in-process under `manage.py serve` (the embedded default, so the in-memory channel layer
reaches the sockets) and as a separate `manage.py run_worker` process in production. Jobs must be safe to run
in several workers at once (claim rows with compare-and-set; purges are idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger(__name__)

JobFunc = Callable[[], dict[str, Any] | None]


@dataclass
class Job:
    name: str
    every_seconds: float
    func: JobFunc
    last_run: float = field(default=0.0)


_REGISTRY: dict[str, Job] = {}


def periodic(*, name: str, every_seconds: float) -> Callable[[JobFunc], JobFunc]:
    """Register `func` to run every `every_seconds` in the background worker."""

    def register(func: JobFunc) -> JobFunc:
        _REGISTRY[name] = Job(name=name, every_seconds=every_seconds, func=func)
        return func

    return register


def registered_jobs() -> dict[str, Job]:
    autodiscover_modules("jobs")
    return _REGISTRY


def run_job(job: Job) -> dict[str, Any] | None:
    """Run one job now, never letting its failure stop the worker."""
    close_old_connections()
    started = time.monotonic()
    try:
        result = job.func()
    except Exception:
        logger.exception("job %s failed", job.name)
        result = None
    finally:
        close_old_connections()
    job.last_run = time.monotonic()
    elapsed = job.last_run - started
    if result:
        logger.info("job %s: %s in %.3fs", job.name, result, elapsed)
    return result


def due_jobs(now: float | None = None) -> list[Job]:
    now = time.monotonic() if now is None else now
    return [job for job in registered_jobs().values() if job.last_run == 0.0 or now - job.last_run >= job.every_seconds]


def run_forever(stop: threading.Event, tick_seconds: float) -> None:
    """Worker loop for a separate process: runs due jobs until `stop` is set."""
    while not stop.is_set():
        for job in due_jobs():
            run_job(job)
        stop.wait(tick_seconds)


async def run_in_loop(stop: asyncio.Event, tick_seconds: float) -> None:
    """Worker loop inside the server's event loop (jobs themselves run in a worker thread)."""
    while not stop.is_set():
        for job in due_jobs():
            await sync_to_async(run_job, thread_sensitive=False)(job)
        try:
            await asyncio.wait_for(stop.wait(), timeout=tick_seconds)
        except TimeoutError:
            pass
