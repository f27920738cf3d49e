"""Fixtures shared by every test: the cast, signed-in clients, and service checks for CI."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.cast import Cast, make_cast

os.environ.setdefault("NTARS_TESTING", "true")

pytest_plugins = ["tests.servers", "tests.browser"]


def pytest_configure(config: pytest.Config) -> None:
    # CI=true: a test that needs PostgreSQL or Redis fails when it is missing, never skips.
    if os.environ.get("CI") == "true":
        missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
        if missing:
            raise pytest.UsageError(f"CI=true needs {', '.join(missing)} set")


@pytest.fixture
def cast(db: None) -> Cast:
    return make_cast()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    from ntars import settings as project_settings

    settings.PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher", *project_settings.PASSWORD_HASHERS]
