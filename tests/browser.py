"""Playwright on Debian's Chromium (Playwright cannot download browsers here).

Fixtures: `browser` (session), `new_context(**kw)` (function), `page` (a 360x740 phone page), and helpers to sign
in through the real pages. Browser tests are marked `browser` and fail (not skip) when Chromium is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
PHONE = {"width": 360, "height": 740}


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    # Playwright's sync API runs its own event loop; Django must allow sync DB calls alongside it.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import expect, sync_playwright

    # Two cores shared with Daphne, the test process and Chromium: allow more than Playwright's 5 s default.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Any) -> Iterator[Any]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("Chromium is not on the PATH: `make test` installs it (Debian: apt-get install chromium)")
    browser = playwright_instance.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture
def new_context(browser: Any) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("viewport", PHONE)
        kwargs.setdefault("is_mobile", True)
        kwargs.setdefault("has_touch", True)
        context = browser.new_context(**kwargs)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield factory
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_context: Callable[..., Any]) -> Any:
    return new_context().new_page()


def signed_in_context(new_context: Callable[..., Any], user: Any, **options: Any) -> Any:
    """A browser context already signed in as `user` (the session cookie of a force_login on 127.0.0.1)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    context = new_context(**options)
    context.add_cookies([{
        "name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "domain": "127.0.0.1", "path": "/",
    }])
    return context


def run_async(make_coroutine: Callable[[], Any], timeout: float = 60) -> Any:
    """Run asyncio code from a browser test: Playwright's loop owns the main thread, so use another thread."""
    import asyncio
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result(timeout=timeout)


def sign_in(page: Any, base_url: str, email: str, password: str, totp_code: Callable[[], str] | None = None) -> None:
    """Sign in through the real login page (and the two-factor step when the account has one)."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    if totp_code is not None:
        page.get_by_label("Authenticator code").fill(totp_code())
        page.get_by_role("button", name="Sign in").click()
