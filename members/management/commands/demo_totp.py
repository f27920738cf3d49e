"""Print the current TOTP code of a seeded demo account, so demo sign-ins need no authenticator app."""

from __future__ import annotations

import time
from typing import Any

from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from allauth.mfa.utils import decrypt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from members.management.commands.seed_demo import demo_emails


def current_code(secret: str, *, now: float | None = None) -> tuple[str, int]:
    """The TOTP code for `secret` at `now`, and how many seconds it stays valid."""
    now = time.time() if now is None else now
    period = mfa_settings.TOTP_PERIOD
    return format_hotp_value(hotp_value(secret, int(now) // period)), period - int(now) % period


class Command(BaseCommand):
    help = "Print the current two-factor (TOTP) code of a demo account. Demo data only: refused in production."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("email")

    def handle(self, *args: Any, email: str, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo_totp reads second-factor secrets: refused with NTARS_ENV=production")
        email = email.strip().lower()
        # Only the seeded accounts: a real person's second factor is never printed, whatever the mode.
        if email not in demo_emails():
            raise CommandError(f"{email} is not a demo account (see `manage.py seed_demo --all`)")
        authenticator = Authenticator.objects.filter(user__email=email, type=Authenticator.Type.TOTP).first()
        if authenticator is None:
            raise CommandError(f"{email} has no TOTP authenticator (run `manage.py seed_demo` first)")
        code, remaining = current_code(decrypt(authenticator.data["secret"]))
        self.stdout.write(f"{code}  (valid for {remaining} more seconds)")
