"""Generate the VAPID key pair that signs Web Push requests (docs/alerts.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from alerts import push


class Command(BaseCommand):
    help = "Generate an EC P-256 VAPID key pair: private PEM to a 0600 file, public key (base64url) printed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, default=None,
                            help="Where to write the private key (default: DATA_DIR/vapid_private.pem)")
        parser.add_argument("--force", action="store_true",
                            help="Replace an existing key file (every device must subscribe again)")
        parser.add_argument("--print", dest="print_pem", action="store_true",
                            help="Print the private PEM instead of writing a file (for a secret manager)")

    def handle(self, *args: Any, **options: Any) -> None:
        key = push.vapid_private_key_generate()
        pem = push.vapid_private_pem(key)
        public = push.vapid_public_b64(key)
        if options["print_pem"]:
            self.stdout.write(pem.decode(), ending="")
            self.stderr.write(f"VAPID_PUBLIC_KEY={public}")
            return
        path: Path = options["out"] or push.vapid_key_file()
        try:
            push.write_private_pem(path, pem, overwrite=options["force"])
        except FileExistsError as exc:
            raise CommandError(f"{path} exists; use --force to replace it (devices must then subscribe again)") from exc
        self.stdout.write(f"Private key written to {path} (mode 0600). Configure:")
        self.stdout.write(f"  VAPID_PRIVATE_KEY_FILE={path}")
        self.stdout.write(f"  VAPID_PUBLIC_KEY={public}")
        self.stdout.write(f"  VAPID_SUBJECT={settings.VAPID_SUBJECT}")
