"""Seed a believable Northampton town centre for demos: streets, ~40 businesses, people, groups, agreements.

Idempotent: it creates whatever demo record is missing and never changes one that exists, so it is safe to
run on every `make demo` (and keeps whatever was changed through the app in between). The plan is built
from a fixed random seed, so every machine gets the same people. Refuses to run in production mode.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from members.audit import audit_record
from members.models import (
    Agreement,
    AgreementAcceptance,
    Business,
    GroupMember,
    Role,
    Street,
    StreetGroup,
    User,
)

DEMO_SEED = 2026
# Demo data only: every demo account shares this password (the command refuses production mode).
DEMO_PASSWORD = "ntars-demo-2026"  # noqa: S105
DEMO_HELP_TOTP = "manage.py demo_totp <email>"
HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class StreetSpec:
    name: str
    postcode: str
    # The street drawn as a straight line between two points near the town centre (52.2370, -0.8960).
    start: tuple[float, float]
    end: tuple[float, float]

    @property
    def slug(self) -> str:
        return slugify(self.name)


STREETS: tuple[StreetSpec, ...] = (
    StreetSpec("Abington Street", "NN1 2AJ", (52.23835, -0.89455), (52.23870, -0.88860)),
    StreetSpec("Gold Street", "NN1 1RA", (52.23660, -0.90230), (52.23700, -0.89840)),
    StreetSpec("The Drapery", "NN1 2HG", (52.23700, -0.89800), (52.23870, -0.89700)),
    StreetSpec("Market Square", "NN1 2DL", (52.23760, -0.89680), (52.23860, -0.89520)),
    StreetSpec("Bridge Street", "NN1 1NL", (52.23640, -0.89800), (52.23340, -0.89700)),
    StreetSpec("St Giles Street", "NN1 1JA", (52.23720, -0.89380), (52.23790, -0.88900)),
)

L, V = Business.Kind.LEVY_PAYER, Business.Kind.VOLUNTARY
ACTIVE, APPLIED, SUSPENDED = Business.Status.ACTIVE, Business.Status.APPLIED, Business.Status.SUSPENDED


@dataclass(frozen=True)
class BusinessSpec:
    name: str
    street: str
    kind: str = L
    status: str = ACTIVE
    night_time: bool = False  # joins the "Night-time economy" group


BUSINESSES: tuple[BusinessSpec, ...] = (
    BusinessSpec("Abington Street Pharmacy", "Abington Street"),
    BusinessSpec("Carlton's Shoes", "Abington Street"),
    BusinessSpec("The Cobbler's Rest", "Abington Street", night_time=True),
    BusinessSpec("Sunrise Mobile Repairs", "Abington Street"),
    BusinessSpec("Mercer & Daughters Opticians", "Abington Street"),
    BusinessSpec("Bean There Coffee", "Abington Street", kind=V),
    BusinessSpec("Nene Valley Vapes", "Abington Street", status=SUSPENDED),
    BusinessSpec("Gold Street Vintage", "Gold Street"),
    BusinessSpec("The Old Bank Bar", "Gold Street", night_time=True),
    BusinessSpec("Lasting Leather", "Gold Street"),
    BusinessSpec("Spice Route Kitchen", "Gold Street", night_time=True),
    BusinessSpec("Gold Street Tattoo", "Gold Street", kind=V),
    BusinessSpec("Phoenix Barbers", "Gold Street"),
    BusinessSpec("Cellar Door Wines", "Gold Street", kind=V, status=APPLIED),
    BusinessSpec("Drapery Jewellers", "The Drapery"),
    BusinessSpec("Clarke's Bakehouse", "The Drapery"),
    BusinessSpec("The Drapery Newsagent", "The Drapery"),
    BusinessSpec("Northgate Books", "The Drapery"),
    BusinessSpec("Crispin Outfitters", "The Drapery"),
    BusinessSpec("Kingsley Pawnbrokers", "The Drapery", status=SUSPENDED),
    BusinessSpec("Market Square Fruit & Veg", "Market Square", kind=V),
    BusinessSpec("Emporium Arcade Cafe", "Market Square"),
    BusinessSpec("Grosvenor Flowers", "Market Square"),
    BusinessSpec("The Bell & Anchor", "Market Square", night_time=True),
    BusinessSpec("Square Deal Electronics", "Market Square"),
    BusinessSpec("Market Square Fish Bar", "Market Square", night_time=True),
    BusinessSpec("Peacock Way Newsagent", "Market Square"),
    BusinessSpec("Bridge Street Social", "Bridge Street", night_time=True),
    BusinessSpec("The Malt House", "Bridge Street", night_time=True),
    BusinessSpec("Lotus Noodle Bar", "Bridge Street", night_time=True),
    BusinessSpec("Bridge Street Dental", "Bridge Street"),
    BusinessSpec("Nene Cycles", "Bridge Street", kind=V),
    BusinessSpec("Cosmos Nightclub", "Bridge Street", night_time=True),
    BusinessSpec("Bridge Street Convenience", "Bridge Street"),
    BusinessSpec("St Giles Deli", "St Giles Street"),
    BusinessSpec("Guildhall Gallery", "St Giles Street", kind=V),
    BusinessSpec("St Giles Hardware", "St Giles Street"),
    BusinessSpec("The Wig & Pen", "St Giles Street", night_time=True),
    BusinessSpec("Giles & Co Tailors", "St Giles Street"),
    BusinessSpec("Cobblestone Tearoom", "St Giles Street"),
    BusinessSpec("Little Acorn Toys", "St Giles Street", kind=V, status=APPLIED),
)


@dataclass(frozen=True)
class AuthoritySpec:
    email: str
    full_name: str
    role: str
    # A fixed, documented TOTP secret per account (base32 of sha1("ntars-demo-totp:" + email)).
    totp_secret: str


AUTHORITIES: tuple[AuthoritySpec, ...] = (
    AuthoritySpec("bid.admin@northamptonbid.example", "Hannah Price", Role.BID_ADMIN,
                  "2J7OYOLHWM6QVFSSN2PMQPYQFWVMS2VG"),
    AuthoritySpec("warden.tom@northamptonbid.example", "Tom Reilly", Role.WARDEN,
                  "RHE2D7KEGRIWQSHYYIYDFHQ6XHTSXD5N"),
    AuthoritySpec("warden.aisha@northamptonbid.example", "Aisha Begum", Role.WARDEN,
                  "RW6FBBRAVAUXB6BPAHYK3P2YL525KAS6"),
    AuthoritySpec("warden.lukas@northamptonbid.example", "Lukas Nowak", Role.WARDEN,
                  "UN235R65NZCZGKWPVTKYMS77YEALRMMB"),
    AuthoritySpec("asb.officer@westnorthants.example", "Gareth Lewis", Role.CASE_OFFICER,
                  "POHYYPU5RFIVM3N2IMKKTZFLBHEC24ZY"),
    AuthoritySpec("nbcp.sam@northants-police.example", "PC Sam Okafor", Role.POLICE,
                  "Z2QK72SPFT7LC7ELNRJXBJCANN5KDA5S"),
    AuthoritySpec("public.realm@westnorthants.example", "Claire Benson", Role.PUBLIC_REALM,
                  "5YKLWGGQUMNLD4N4HDXQ3GPZS5DVTLUD"),
    AuthoritySpec("dpo@northamptonbid.example", "Priya Shah", Role.DPO,
                  "GFFNHUTHRHJIYGIVLK6GY6EHD3C4YJAM"),
)

TOWN_CENTRE = "Town centre"
NIGHT_TIME = "Night-time economy"
# Who sits in which group individually (staff are members through their business's street).
ALL_GROUPS = "*"
SEATS: dict[str, tuple[str, ...]] = {
    Role.WARDEN: (ALL_GROUPS,),
    Role.BID_ADMIN: (TOWN_CENTRE,),
    Role.CASE_OFFICER: (TOWN_CENTRE, NIGHT_TIME),
    Role.POLICE: (TOWN_CENTRE, NIGHT_TIME),
    Role.PUBLIC_REALM: (TOWN_CENTRE,),
}
MODERATOR_ROLES = frozenset({Role.WARDEN, Role.BID_ADMIN})

AGREEMENTS: tuple[tuple[str, str, str], ...] = (
    (
        Agreement.Kind.DATA_SHARING,
        "NTARS data-sharing agreement",
        "NTARS shares information about crime and anti-social behaviour between Northampton Town Centre BID, "
        "member businesses, West Northamptonshire Council and Northampton Business Crime Partnership, for the "
        "prevention and detection of crime and disorder only.\n\n"
        "1. Share only what is necessary, accurate and relevant to an incident.\n"
        "2. Information about individuals stays inside NTARS: do not copy, screenshot, post or forward it.\n"
        "3. Images of offenders are shown only while an order or warning justifies it and are removed after.\n"
        "4. Every look at someone's personal data by an authority user is recorded and reviewed by the DPO.\n"
        "5. Report any mistake or leak to the data protection officer at once.\n\n"
        "Anyone may ask the BID what NTARS holds about them; contact the data protection officer.",
    ),
    (
        Agreement.Kind.CODE_OF_CONDUCT,
        "NTARS code of conduct",
        "1. Report what you saw, not what you assume. Describe behaviour, not appearance or background.\n"
        "2. Be respectful: no insults, jokes or speculation about anyone, in messages or reports.\n"
        "3. Never confront or follow a person because of something shared on NTARS.\n"
        "4. In an emergency call 999 first; NTARS is not monitored around the clock.\n"
        "5. Keep your sign-in to yourself and tell your manager when a colleague leaves.\n\n"
        "Breaking this code can lead to suspension of your account or of your business's membership.",
    ),
)

FIRST_NAMES = (
    "Amelia", "Olivia", "Isla", "Ava", "Mia", "Sophie", "Grace", "Ruby", "Ella", "Freya", "Zara", "Chloe",
    "Jack", "Oliver", "Harry", "George", "Noah", "Leo", "Arthur", "Muhammad", "Oscar", "Charlie", "Jacob",
    "Ravi", "Kwame", "Ewa", "Tomasz", "Aoife", "Deepa", "Ibrahim", "Mariam", "Connor", "Bethany", "Liam",
)
LAST_NAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
    "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Khan", "Clarke",
    "Hughes", "Kaur", "Lewis", "Edwards", "Kowalski", "Mensah", "O'Brien", "Ahmed", "Singh", "Murphy",
)


@dataclass(frozen=True)
class PersonPlan:
    email: str
    full_name: str
    role: str


@dataclass(frozen=True)
class BusinessPlan:
    spec: BusinessSpec
    trading_address: str
    levy_reference: str
    latitude: Decimal
    longitude: Decimal
    contact: PersonPlan
    people: tuple[PersonPlan, ...]  # manager first; empty while the application is undecided


def _person(*, first: str, last: str, domain: str, role: str) -> PersonPlan:
    local = slugify(f"{first} {last}".replace("'", "")).replace("-", ".")
    return PersonPlan(email=f"{local}@{domain}", full_name=f"{first} {last}", role=role)


def demo_plan(seed: int = DEMO_SEED) -> list[BusinessPlan]:
    """The demo town centre as plain data: the same for the same seed, whatever the database holds."""
    rng = random.Random(seed)
    streets = {street.name: street for street in STREETS}
    plans = []
    used_numbers: dict[str, set[int]] = {name: set() for name in streets}
    for index, spec in enumerate(BUSINESSES, start=1):
        street = streets[spec.street]
        number = rng.choice([n for n in range(1, 80) if n not in used_numbers[spec.street]])
        used_numbers[spec.street].add(number)
        along = number / 80
        latitude = street.start[0] + (street.end[0] - street.start[0]) * along + rng.uniform(-0.00008, 0.00008)
        longitude = street.start[1] + (street.end[1] - street.start[1]) * along + rng.uniform(-0.00008, 0.00008)
        domain = slugify(spec.name.replace("&", "and")) + ".example"
        # Distinct first names, so nobody shares an email address within a business.
        names = [(first, rng.choice(LAST_NAMES)) for first in rng.sample(FIRST_NAMES, 1 + rng.randint(1, 3))]
        manager, *staff = (
            _person(first=first, last=last, domain=domain, role=Role.MANAGER if i == 0 else Role.STAFF)
            for i, (first, last) in enumerate(names)
        )
        people = () if spec.status == APPLIED else (manager, *staff)
        plans.append(
            BusinessPlan(
                spec=spec,
                trading_address=f"{number} {spec.street}, Northampton {street.postcode}",
                levy_reference=f"NBID-{index:04d}" if spec.kind == L else "",
                latitude=Decimal(f"{latitude:.6f}"),
                longitude=Decimal(f"{longitude:.6f}"),
                contact=manager,
                people=people,
            )
        )
    return plans


def demo_emails() -> set[str]:
    """Every email address the demo data signs in with."""
    emails = {authority.email for authority in AUTHORITIES}
    for plan in demo_plan():
        emails.update(person.email for person in plan.people)
    return emails


class Seeder:
    def __init__(self) -> None:
        self.created: dict[str, int] = {}
        self.password_hash = ""  # hashed once, lazily: Argon2 for ~130 accounts would take a while

    def count(self, kind: str, created: bool) -> None:
        if created:
            self.created[kind] = self.created.get(kind, 0) + 1

    def user(self, *, email: str, full_name: str, role: str, business: Business | None) -> User:
        try:
            return User.objects.get(email=email)
        except User.DoesNotExist:
            pass
        if not self.password_hash:
            self.password_hash = make_password(DEMO_PASSWORD)
        user = User.objects.create(email=email, full_name=full_name, role=role, business=business,
                                   password=self.password_hash)
        self.count("people", True)
        return user

    @transaction.atomic
    def run(self) -> None:
        now = timezone.now()
        agreements = []
        for kind, title, body in AGREEMENTS:
            agreement, created = Agreement.objects.get_or_create(kind=kind, version=1,
                                                                 defaults={"title": title, "body": body})
            self.count("agreements", created)
            agreements.append(agreement)

        streets: dict[str, Street] = {}
        for spec in STREETS:
            streets[spec.name], created = Street.objects.get_or_create(slug=spec.slug, defaults={"name": spec.name})
            self.count("streets", created)

        authorities: list[User] = []
        for authority in AUTHORITIES:
            user = self.user(email=authority.email, full_name=authority.full_name, role=authority.role,
                             business=None)
            if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
                TOTP.activate(user, authority.totp_secret)
                self.count("TOTP authenticators", True)
            authorities.append(user)
        bid_admin = next(user for user in authorities if user.role == Role.BID_ADMIN)

        people: list[User] = list(authorities)
        night_time: list[Business] = []
        for plan in demo_plan():
            spec = plan.spec
            decided = spec.status != APPLIED
            business, created = Business.objects.get_or_create(
                name=spec.name,
                defaults={
                    "trading_address": plan.trading_address,
                    "street": streets[spec.street],
                    "levy_reference": plan.levy_reference,
                    "kind": spec.kind,
                    "status": spec.status,
                    "contact_name": plan.contact.full_name,
                    "contact_email": plan.contact.email,
                    "latitude": plan.latitude,
                    "longitude": plan.longitude,
                    "decided_at": now if decided else None,
                    "decided_by": bid_admin if decided else None,
                    "decision_reason": "Levy for 2026/27 unpaid after two reminders"
                    if spec.status == SUSPENDED else "",
                },
            )
            self.count("businesses", created)
            if spec.night_time:
                night_time.append(business)
            for person in plan.people:
                people.append(self.user(email=person.email, full_name=person.full_name, role=person.role,
                                        business=business))

        for user in people:
            for agreement in agreements:
                _, created = AgreementAcceptance.objects.get_or_create(user=user, agreement=agreement)
                self.count("agreement acceptances", created)

        groups = self.groups(streets=streets, night_time=night_time)
        for user in authorities:
            names = SEATS.get(user.role, ())
            for group in groups:
                if ALL_GROUPS in names or group.name in names:
                    _, created = GroupMember.objects.get_or_create(
                        group=group, user=user, defaults={"is_moderator": user.role in MODERATOR_ROLES,
                                                          "added_by": bid_admin})
                    self.count("group seats", created)

        if self.created:
            audit_record(action="demo.seed", actor=None, object_type="demo", detail={"created": self.created})

    def groups(self, *, streets: dict[str, Street], night_time: list[Business]) -> list[StreetGroup]:
        groups = []
        for spec in STREETS:
            group, created = StreetGroup.objects.get_or_create(
                name=spec.name, defaults={"kind": StreetGroup.Kind.STREET, "description": f"Businesses on {spec.name}"})
            if created:
                group.streets.add(streets[spec.name])
            self.count("street groups", created)
            groups.append(group)
        group, created = StreetGroup.objects.get_or_create(
            name=TOWN_CENTRE,
            defaults={"kind": StreetGroup.Kind.AREA, "retention_seconds": 14 * DAY,
                      "description": "Every member business in the BID area"})
        if created:
            group.streets.add(*streets.values())
        self.count("street groups", created)
        groups.append(group)
        group, created = StreetGroup.objects.get_or_create(
            name=NIGHT_TIME,
            defaults={"kind": StreetGroup.Kind.CUSTOM, "retention_seconds": 2 * DAY,
                      "description": "Pubs, bars, clubs and late food: evenings and weekends"})
        if created:
            group.businesses.add(*night_time)
        self.count("street groups", created)
        groups.append(group)
        return groups


def login_rows(*, everyone: bool) -> list[tuple[str, str, str, str]]:
    """(email, role, where, TOTP secret) for the printed table: authorities, then business people."""
    rows = [(a.email, Role(a.role).label, "", a.totp_secret) for a in AUTHORITIES]
    shown_streets: set[str] = set()
    for plan in demo_plan():
        if not plan.people:
            continue
        featured = plan.spec.street not in shown_streets and plan.spec.status == ACTIVE
        if everyone or featured or plan.spec.status == SUSPENDED:
            shown_streets.add(plan.spec.street)
            where = plan.spec.name + (" (suspended)" if plan.spec.status == SUSPENDED else "")
            people = plan.people if everyone else plan.people[:2]
            rows.extend((p.email, Role(p.role).label, where, "") for p in people)
    return rows


class Command(BaseCommand):
    help = "Create the demo town centre (idempotent) and print the demo logins. Refused in production."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--all", action="store_true", dest="everyone",
                            help="list every demo login, not a selection")

    def handle(self, *args: Any, everyone: bool, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo creates accounts with a published password: refused with NTARS_ENV=production")
        seeder = Seeder()
        seeder.run()
        if seeder.created:
            summary = ", ".join(f"{count} {kind}" for kind, count in seeder.created.items())
            self.stdout.write(f"Demo data created: {summary}.")
        else:
            self.stdout.write("Demo data already in place: nothing to create.")
        self.print_logins(everyone=everyone)

    def print_logins(self, *, everyone: bool) -> None:
        rows = login_rows(everyone=everyone)
        width = max(len(email) for email, *_ in rows)
        role_width = max(len(role) for _, role, *_ in rows)
        out = self.stdout
        out.write("")
        out.write(f"Demo logins: every account's password is  {DEMO_PASSWORD}")
        out.write(f"{'EMAIL':<{width}}  {'ROLE':<{role_width}}  BUSINESS / TOTP SECRET")
        for email, role, where, secret in rows:
            out.write(f"{email:<{width}}  {role:<{role_width}}  {where or secret}")
        out.write("")
        out.write("Authority accounts (wardens, BID admin, officers, police, DPO) sign in with a TOTP code:")
        out.write(f"  {DEMO_HELP_TOTP}   prints the current code, or add the secret above to an authenticator app.")
        if not everyone:
            out.write("Every business has a manager and 1-3 staff: `manage.py seed_demo --all` lists all logins.")
