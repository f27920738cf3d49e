"""Street-chat background jobs (run by `manage.py serve` in-process, or `manage.py run_worker`)."""

from __future__ import annotations

from chat.services import (
    blobs_purge_expired,
    epochs_purge_unneeded,
    franking_keys_rotate,
    messages_purge_expired,
    presence_sweep_stale,
)
from members.jobs import periodic


@periodic(name="chat.purge_expired", every_seconds=60)
def purge_expired() -> dict[str, int]:
    """Delete expired messages and their blobs (each purge that deletes something is audited), and the group
    key records no unexpired message needs any more."""
    return {"messages": messages_purge_expired(), "blobs": blobs_purge_expired(), "epochs": epochs_purge_unneeded()}


@periodic(name="chat.presence_sweep", every_seconds=15)
def presence_sweep() -> dict[str, int]:
    """Forget sockets whose process stopped heart-beating, so presence shows no ghosts."""
    return {"stale_connections": presence_sweep_stale()}


@periodic(name="chat.franking_keys", every_seconds=3600)
def franking_keys() -> dict[str, int]:
    """Start a new server franking key each day; destroy keys older than FRANKING_KEY_DAYS + 1 day."""
    return franking_keys_rotate()
