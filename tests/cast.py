"""The shared cast: alice (manager) and bob (staff) at one business, charlie at another, and the authorities.

charlie must see nothing of alice's and bob's; the authority users all have TOTP set up.
"""

from __future__ import annotations

from dataclasses import dataclass

from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, hotp_value, yield_hotp_counters_from_time

from members.models import Agreement, AgreementAcceptance, Business, Role, Street, StreetGroup, User

PASSWORD = "correct-horse-battery-staple"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def totp_now(secret: str = TOTP_SECRET) -> str:
    counter = next(iter(yield_hotp_counters_from_time()))
    return format_hotp_value(hotp_value(secret, counter))


@dataclass
class Cast:
    gold: Street
    abington: Street
    books: Business
    bakery: Business
    gold_group: StreetGroup
    abington_group: StreetGroup
    alice: User
    bob: User
    charlie: User
    warden: User
    admin: User
    officer: User
    police: User
    realm: User
    dpo: User


def make_user(email: str, full_name: str, role: str, business: Business | None = None, *, totp: bool = False,
              accept: bool = True) -> User:
    user = User.objects.create_user(email, PASSWORD, full_name=full_name, role=role, business=business)
    if totp:
        TOTP.activate(user, TOTP_SECRET)
    if accept:
        for agreement in Agreement.objects.all():
            AgreementAcceptance.objects.create(user=user, agreement=agreement)
    return user


def make_cast() -> Cast:
    Agreement.objects.get_or_create(kind=Agreement.Kind.DATA_SHARING, version=1,
                                    defaults={"title": "Data-sharing agreement", "body": "Share with care."})
    Agreement.objects.get_or_create(kind=Agreement.Kind.CODE_OF_CONDUCT, version=1,
                                    defaults={"title": "Code of conduct", "body": "Be fair and accurate."})
    gold = Street.objects.create(name="Gold Street", slug="gold-street")
    abington = Street.objects.create(name="Abington Street", slug="abington-street")
    books = Business.objects.create(name="Gold Street Books", trading_address="12 Gold Street", street=gold,
                                    levy_reference="BID-0012", kind=Business.Kind.LEVY_PAYER,
                                    status=Business.Status.ACTIVE)
    bakery = Business.objects.create(name="Abington Bakery", trading_address="40 Abington Street", street=abington,
                                     levy_reference="BID-0040", kind=Business.Kind.LEVY_PAYER,
                                     status=Business.Status.ACTIVE)
    gold_group = StreetGroup.objects.create(name="Gold Street", kind=StreetGroup.Kind.STREET)
    gold_group.streets.add(gold)
    abington_group = StreetGroup.objects.create(name="Abington Street", kind=StreetGroup.Kind.STREET)
    abington_group.streets.add(abington)
    cast = Cast(
        gold=gold, abington=abington, books=books, bakery=bakery, gold_group=gold_group,
        abington_group=abington_group,
        alice=make_user("alice@books.example", "Alice Archer", Role.MANAGER, books),
        bob=make_user("bob@books.example", "Bob Baker", Role.STAFF, books),
        charlie=make_user("charlie@bakery.example", "Charlie Chalk", Role.STAFF, bakery),
        warden=make_user("wendy@bid.example", "Wendy Warden", Role.WARDEN, totp=True),
        admin=make_user("adam@bid.example", "Adam Admin", Role.BID_ADMIN, totp=True),
        officer=make_user("olivia@council.example", "Olivia Officer", Role.CASE_OFFICER, totp=True),
        police=make_user("pc.patel@police.example", "PC Priya Patel", Role.POLICE, totp=True),
        realm=make_user("rob@council.example", "Rob Realm", Role.PUBLIC_REALM, totp=True),
        dpo=make_user("dana@bid.example", "Dana DPO", Role.DPO, totp=True),
    )
    from members.models import GroupMember

    GroupMember.objects.create(group=gold_group, user=cast.warden, is_moderator=True)
    return cast
