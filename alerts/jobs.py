"""Alerts background jobs, run by the members job worker (`manage.py serve` in-process, or `run_worker`)."""

from __future__ import annotations

from typing import Any

from alerts import services
from members.jobs import periodic


@periodic(name="alerts.deliver_push", every_seconds=2)
def deliver_push() -> dict[str, Any] | None:
    """Send every due push (several workers may run this at once: rows are claimed with compare-and-set)."""
    return services.deliver_all_due(limit=1000, max_seconds=30) or None


@periodic(name="alerts.purge_push_deliveries", every_seconds=3600)
def purge_push_deliveries() -> dict[str, Any] | None:
    deleted = services.push_deliveries_purge()
    return {"deleted": deleted} if deleted else None
