"""Send a warden's broadcast from the command line (control rooms, scripts), through the same service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from alerts import selectors, services
from alerts.models import Broadcast
from members.models import Street, StreetGroup, User


def _names(values: list[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


class Command(BaseCommand):
    help = 'Broadcast an alert, e.g. --as warden@bid.example --title ... --text ... --priority urgent --streets "Gold Street"'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as", dest="author", required=True, help="Email of the warden or BID admin sending it")
        parser.add_argument("--title", required=True)
        parser.add_argument("--text", required=True, help="The message; '-' reads it from standard input")
        parser.add_argument("--priority", choices=Broadcast.Priority.values, default=Broadcast.Priority.INFO)
        parser.add_argument("--all", action="store_true", help="Everyone in the scheme")
        parser.add_argument("--streets", action="append", default=[], help="Street names or slugs, comma-separated")
        parser.add_argument("--groups", action="append", default=[], help="Street group names, comma-separated")
        parser.add_argument("--roles", action="append", default=[], help="Roles, e.g. manager,staff")
        parser.add_argument("--expires-in", type=int, default=None, help="Minutes until the alert expires")
        parser.add_argument("--photo", type=Path, default=None, help="A JPEG, PNG or WebP photo")

    def handle(self, *args: Any, **options: Any) -> None:
        author = User.objects.filter(email__iexact=options["author"]).select_related("business").first()
        if author is None or not selectors.can_broadcast(user=author):
            raise CommandError(f"{options['author']} is not an active warden or BID admin")
        text = self.stdin.read() if options["text"] == "-" else options["text"]
        street_ids = []
        for name in _names(options["streets"]):
            street = Street.objects.filter(Q(name__iexact=name) | Q(slug=name)).first()
            if street is None:
                raise CommandError(f"No street called {name!r}")
            street_ids.append(street.pk)
        group_ids = []
        for name in _names(options["groups"]):
            group = StreetGroup.objects.filter(name__iexact=name, archived_at__isnull=True).first()
            if group is None:
                raise CommandError(f"No street group called {name!r}")
            group_ids.append(group.pk)
        expires_at = timezone.now() + timedelta(minutes=options["expires_in"]) if options["expires_in"] else None
        try:
            broadcast = services.broadcast_create(
                author=author, title=options["title"], text=text, priority=options["priority"],
                audience_all=options["all"], group_ids=group_ids, street_ids=street_ids,
                roles=_names(options["roles"]), expires_at=expires_at,
                photo=options["photo"].read_bytes() if options["photo"] else None, via="cli",
            )
        except (services.AlertsInvalid, PermissionDenied) as exc:
            raise CommandError(str(exc)) from exc
        counts = selectors.broadcast_counts(broadcast=broadcast)
        self.stdout.write(
            f"Broadcast {broadcast.pk} ({broadcast.priority}) to {counts['recipients']} people, "
            f"{counts['push_queued']} pushes queued"
        )
