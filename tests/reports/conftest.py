"""Report fixtures: private media in a temporary folder; for browser tests a Daphne with a routed map tile
server and phone-sized contexts signed in as someone."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from PIL import Image

from members.models import User
from tests.browser import signed_in_context
from tests.servers import DaphneProcess


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


TILE_URL = "https://tiles.ntars.invalid/{z}/{x}/{y}.png"


def _tile() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (230, 230, 220)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def server(daphne_factory: Callable[..., DaphneProcess]) -> DaphneProcess:
    return daphne_factory(worker=False, extra_env={"MAP_TILE_URL": TILE_URL})


@pytest.fixture
def signed_in(new_context: Callable[..., Any], server: DaphneProcess) -> Callable[[User], Any]:
    """A phone-sized browser context signed in as `user` (session cookie from force_login), tiles served locally."""
    tile = _tile()

    def make(user: User) -> Any:
        context = signed_in_context(new_context, user)
        context.route("https://tiles.ntars.invalid/**", lambda route: route.fulfill(body=tile, content_type="image/png"))
        return context

    return make
