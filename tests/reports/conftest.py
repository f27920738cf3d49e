"""Report fixtures: private media in a temporary folder, and files to upload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings


@pytest.fixture(autouse=True)
def fast_passwords(settings: object) -> None:
    """The cast's passwords are hashed with Argon2 in production settings; here speed matters more."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def media(tmp_path: Path) -> Iterator[Path]:
    """Each test gets its own private storage folder (the default storage, under MEDIA_ROOT)."""
    root = tmp_path / "media"
    storages = {**settings.STORAGES, "default": {**settings.STORAGES["default"], "OPTIONS": {"location": root}}}
    with override_settings(MEDIA_ROOT=root, STORAGES=storages):
        yield root
