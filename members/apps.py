from django.apps import AppConfig


class MembersConfig(AppConfig):
    name = "members"
    verbose_name = "Members"

    def ready(self) -> None:
        # Security events (sign-in, lockout, MFA, passwords, sign-out closing sockets) go to the audit trail.
        from members import signals  # noqa: F401
