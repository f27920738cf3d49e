"""Alerts fixtures: a VAPID key, the loopback allow-list, and a running fake push service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from alerts import push, services
from alerts.models import PushSubscription
from members.models import User
from tests.alerts.fake_push import FakePushService, FakeSubscription


@pytest.fixture(autouse=True)
def push_settings(settings: SettingsWrapper, tmp_path_factory: pytest.TempPathFactory) -> SettingsWrapper:
    # The cast signs in with force_login: a fast hasher keeps its nine users from costing seconds per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.VAPID_PRIVATE_KEY = push.vapid_private_pem(push.vapid_private_key_generate()).decode()
    settings.VAPID_PUBLIC_KEY = ""
    settings.VAPID_SUBJECT = "mailto:alerts-test@northamptonbid.example"
    settings.PUSH_ENDPOINT_ALLOWLIST = ["127.0.0.1"]
    settings.PUSH_ALLOW_PRIVATE_ENDPOINTS = False
    settings.DATA_DIR = tmp_path_factory.mktemp("data")
    media = tmp_path_factory.mktemp("media")
    settings.MEDIA_ROOT = media
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(media)}}}
    return settings


@pytest.fixture
def fake_push(push_settings: SettingsWrapper) -> Iterator[FakePushService]:
    with FakePushService(vapid_public_key=push.vapid_public_key()) as service:
        yield service


def subscribe(fake: FakePushService, user: User, label: str = "phone") -> tuple[FakeSubscription, PushSubscription]:
    """A device of `user` subscribed with the fake service, stored through the service layer."""
    device = fake.subscribe()
    stored = services.subscription_save(user=user, endpoint=device.endpoint, p256dh=device.p256dh,
                                        auth=device.auth, label=label)
    return device, stored
