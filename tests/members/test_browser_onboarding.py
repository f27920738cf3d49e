"""First sign-in, end to end in Chromium against a real Daphne: apply -> approve -> invite -> accept -> TOTP ->
agreements, for a business manager (TOTP optional, turned on) and for a warden (TOTP mandatory)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value, yield_hotp_counters_from_time
from playwright.sync_api import expect

from members.models import AgreementAcceptance, AuditEvent, Business, Role, User
from tests.browser import sign_in
from tests.cast import PASSWORD, Cast, totp_now
from tests.servers import DaphneProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NEW_PASSWORD = "a-long-passphrase-for-ntars"


def code_for(secret: str) -> str:
    """What an authenticator app shows right now for `secret`."""
    return format_hotp_value(hotp_value(secret, next(iter(yield_hotp_counters_from_time()))))


def invitation_link(server: DaphneProcess, email: str) -> str:
    """The /invite/<token>/ link from the last invitation mailed to `email` (links are single-use)."""
    for message in reversed(server.outbox()):
        if email in str(message["To"]):
            body = message.get_payload(decode=True)
            text = body.decode() if isinstance(body, bytes) else str(message.get_payload())
            match = re.search(r"https?://\S+/invite/[^/\s]+/", text)
            if match:
                return match.group(0)
    raise AssertionError(f"no invitation mailed to {email}: {[m['Subject'] for m in server.outbox()]}")


def set_up_totp(page: Any) -> str:
    """On allauth's activation page: read the setup key as a phone app would, type the code, keep going."""
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    secret = page.get_by_label("Setup key").input_value()
    page.get_by_label("Authenticator code").fill(code_for(secret))
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_role("heading", name=re.compile("Recovery codes", re.I))).to_be_visible()
    assert len(page.get_by_label("Unused codes").input_value().split()) >= 8
    return secret


def accept_agreements(page: Any) -> None:
    expect(page.get_by_role("heading", name="Before you start")).to_be_visible()
    page.get_by_label("I have read and accept these documents").check()
    page.get_by_role("button", name="Accept and continue").click()


def test_it_takes_an_applicant_business_to_its_managers_first_sign_in(
    cast: Cast, live_server_proc: DaphneProcess, new_context: Any
) -> None:
    base = live_server_proc.url

    # 1. The business applies through the public form.
    public = new_context().new_page()
    public.goto(f"{base}/apply/")
    public.get_by_label("Business name").fill("Market Square Café")
    public.get_by_label("Trading address").fill("3 Market Square")
    public.get_by_label("Street").select_option(label="Gold Street")
    public.get_by_label("Contact name").fill("Mo Market")
    public.get_by_label("Contact email").fill("mo@market.example")
    public.get_by_role("button", name="Send application").click()
    expect(public.get_by_role("heading", name=re.compile("application has been received"))).to_be_visible()

    # 2. A BID admin (two-factor) approves it, which invites the contact as the business's manager.
    admin = new_context().new_page()
    sign_in(admin, base, cast.admin.email, PASSWORD, totp_code=totp_now)
    admin.goto(f"{base}/bid/applications/")
    card = admin.get_by_role("listitem").filter(has=admin.get_by_role("heading", name="Market Square Café"))
    card.get_by_label("Reason").fill("Welcome to the scheme")
    card.get_by_role("button", name="Approve and invite the contact").click()
    expect(admin.get_by_text("Approved Market Square Café")).to_be_visible()

    # 3. The contact opens the emailed link on a phone and creates the account.
    phone_context = new_context()
    phone = phone_context.new_page()
    phone.goto(invitation_link(live_server_proc, "mo@market.example"))
    expect(phone.get_by_role("heading", name="Welcome to NTARS")).to_be_visible()
    phone.get_by_label("Your name").fill("Mo Market")
    phone.get_by_label("Choose a password").fill(NEW_PASSWORD)
    phone.get_by_label("Type the password again").fill(NEW_PASSWORD)
    phone.get_by_role("button", name="Create my account").click()

    # 4. First sign-in: the agreements come first; two-factor is optional for a manager.
    accept_agreements(phone)
    expect(phone.get_by_role("heading", name=re.compile("Hello, Mo"))).to_be_visible()
    manager = User.objects.get(email="mo@market.example")
    assert manager.role == Role.MANAGER
    assert manager.business is not None and manager.business.status == Business.Status.ACTIVE
    assert AgreementAcceptance.objects.filter(user=manager).count() == 2

    # 5. The manager turns two-factor on from the security page (no second password prompt right after
    #    accepting the invitation), then signs out and in again with a code.
    phone.goto(f"{base}/security/")
    phone.get_by_role("link", name="Set up an authenticator app").click()
    secret = set_up_totp(phone)
    phone.goto(f"{base}/security/")
    expect(phone.get_by_text("On.")).to_be_visible()
    phone.get_by_role("button", name="Sign out").first.click()
    sign_in(phone, base, "mo@market.example", NEW_PASSWORD, totp_code=lambda: code_for(secret))
    expect(phone.get_by_role("heading", name=re.compile("Hello, Mo"))).to_be_visible()

    actions = set(AuditEvent.objects.filter(subject=manager).values_list("action", flat=True))
    assert {"login.succeeded", "mfa.added", "logout"} <= actions


def test_it_makes_an_invited_warden_set_up_two_factor_before_anything_else(
    cast: Cast, live_server_proc: DaphneProcess, new_context: Any
) -> None:
    base = live_server_proc.url
    admin = new_context().new_page()
    sign_in(admin, base, cast.admin.email, PASSWORD, totp_code=totp_now)
    admin.goto(f"{base}/bid/people/")
    invite = admin.get_by_role("region", name="Invite someone")
    invite.get_by_label("Email").fill("walt@bid.example")
    invite.get_by_label("Name").fill("Walt Warden")
    invite.get_by_label("Role").select_option(label="BID warden")
    invite.get_by_role("button", name="Send invitation").click()
    expect(admin.get_by_text("walt@bid.example").first).to_be_visible()

    page = new_context().new_page()
    page.goto(invitation_link(live_server_proc, "walt@bid.example"))
    page.get_by_label("Choose a password").fill(NEW_PASSWORD)
    page.get_by_label("Type the password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Create my account").click()

    # Mandatory for a warden: the gate sends every page to the two-factor setup until it is done.
    expect(page.get_by_text("You cannot continue until this is set up")).to_be_visible()
    page.goto(f"{base}/security/")
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    set_up_totp(page)
    page.goto(f"{base}/")
    accept_agreements(page)
    expect(page.get_by_role("heading", name=re.compile("Hello, Walt"))).to_be_visible()
    warden = User.objects.get(email="walt@bid.example")
    assert warden.role == Role.WARDEN
    assert Authenticator.objects.filter(user=warden, type=Authenticator.Type.TOTP).exists()
    # The security page shows it on, and offers no way to turn a mandatory second factor off.
    page.goto(f"{base}/security/")
    expect(page.get_by_text("On.")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Turn off"))).to_have_count(0)
