"""Fixtures shared by every test: the cast, signed-in clients, and service checks for CI."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _playwright_loop_out_of_the_way(request: pytest.FixtureRequest) -> Iterator[None]:
    """Playwright's sync API (kept for the whole session by tests/browser.py) leaves its event loop marked as
    running in the main thread, so any async test after the first browser test would fail with "cannot be called
    from a running event loop". Async tests run with that mark lifted; it is put back for the browser tests."""
    if not inspect.iscoroutinefunction(getattr(request.node, "obj", None)):
        yield
        return
    foreign = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(foreign)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Playwright's sync API leaves its event loop installed in the main thread for the rest of the session, so
    # asyncio.run() and async_to_sync() in later tests would fail: run every browser test last.
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


@pytest.fixture
def cast(db: None) -> Cast:
    return make_cast()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    from ntars import settings as project_settings

    settings.PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher", *project_settings.PASSWORD_HASHERS]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    # allauth's rate limits (and TOTP replay marks) live in the cache: one test's sign-ins must not count in the next.
    from django.core.cache import cache

    cache.clear()
