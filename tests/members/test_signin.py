"""Sign-in: email + password, closed sign-up, password reset by email, TOTP, passkeys, lockout, audit."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value
from axes.models import AccessAttempt
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone

from members.models import AuditEvent, Role, User
from tests.cast import PASSWORD, Cast, make_user, totp_now

LOGIN = "/accounts/login/"
WRONG = "not-the-password-at-all"


def sign_in(client: Client, email: str, password: str = PASSWORD, *, ip: str = "127.0.0.1", **extra: str):
    return client.post(LOGIN, {"login": email, "password": password}, REMOTE_ADDR=ip, **extra)


def actions(**filters: object) -> list[str]:
    return list(AuditEvent.objects.filter(**filters).order_by("id").values_list("action", flat=True))


def reauthenticate(client: Client, url: str) -> None:
    """Changing second factors needs the password again (allauth's reauthentication), then goes on to `url`."""
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/reauthenticate/")
    page = client.get(response.headers["Location"])
    assert "Confirm it is you" in page.content.decode()
    response = client.post("/accounts/reauthenticate/", {"password": PASSWORD, "next": url})
    assert response.status_code == 302
    assert response.headers["Location"] == url


def code_for(secret: str) -> str:
    from allauth.mfa.totp.internal.auth import yield_hotp_counters_from_time

    return format_hotp_value(hotp_value(secret, next(iter(yield_hotp_counters_from_time()))))


# --- Email and password ------------------------------------------------------------------------------


def test_it_signs_in_with_email_and_password(cast: Cast, client: Client) -> None:
    response = sign_in(client, "Bob@Books.example")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    event = AuditEvent.objects.get(action="login.succeeded")
    assert event.actor == cast.bob
    assert event.ip_address == "127.0.0.1"


def test_it_shows_a_login_page_in_the_shell_without_sign_up(db: None, client: Client) -> None:
    response = client.get(LOGIN)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="skip-link"' in html  # our base.html layout
    assert '<label for="id_login">Email</label>' in html
    assert '<label for="id_password">Password</label>' in html
    assert "/accounts/password/reset/" in html
    assert "sign up" not in html.lower() and "/accounts/signup/" not in html


def test_it_refuses_a_wrong_password_and_audits_it_without_the_password(cast: Cast, client: Client) -> None:
    response = sign_in(client, "bob@books.example", WRONG)
    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action="login.failed")
    assert event.subject == cast.bob
    assert event.detail["email"] == "bob@books.example"
    stored = json.dumps([list(e.values()) for e in AuditEvent.objects.values()], default=str)
    assert WRONG not in stored and PASSWORD not in stored


def test_it_audits_a_failure_for_an_unknown_email(db: None, client: Client) -> None:
    sign_in(client, "nobody@nowhere.example", WRONG)
    event = AuditEvent.objects.get(action="login.failed")
    assert event.subject is None
    assert event.detail["email"] == "nobody@nowhere.example"


def test_it_has_closed_self_sign_up(db: None, client: Client) -> None:
    response = client.get("/accounts/signup/")
    assert response.status_code == 200
    assert "Sign Up Closed" in response.content.decode() or "closed" in response.content.decode().lower()
    client.post("/accounts/signup/", {"email": "eve@evil.example", "password1": "x" * 20, "password2": "x" * 20})
    assert not User.objects.filter(email="eve@evil.example").exists()


def test_it_resets_a_password_by_email(cast: Cast, client: Client) -> None:
    response = client.post("/accounts/password/reset/", {"email": "bob@books.example"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["bob@books.example"]
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/\S+/)", message.body)
    assert link is not None
    response = client.get(link.group(1))
    # allauth moves the key into the session and redirects to a key-less URL.
    if response.status_code == 302:
        response = client.get(response.headers["Location"])
    assert response.status_code == 200
    new_password = "a-brand-new-long-passphrase"
    response = client.post(response.request["PATH_INFO"], {"password1": new_password, "password2": new_password})
    assert response.status_code == 302
    cast.bob.refresh_from_db()
    assert cast.bob.check_password(new_password)
    assert "password.reset" in actions(subject=cast.bob)
    # The old password no longer works, the new one does.
    assert sign_in(Client(), "bob@books.example", PASSWORD).status_code == 200
    assert sign_in(Client(), "bob@books.example", new_password).status_code == 302


def test_it_sends_no_reset_mail_for_an_unknown_address(db: None, client: Client) -> None:
    response = client.post("/accounts/password/reset/", {"email": "nobody@nowhere.example"})
    assert response.status_code == 302  # same answer as for a real account: no enumeration
    assert all("reset/key" not in m.body for m in mail.outbox)


def test_it_changes_a_password_and_audits_it(cast: Cast, client: Client) -> None:
    sign_in(client, "bob@books.example")
    new_password = "another-long-passphrase-1"
    response = client.post("/accounts/password/change/",
                           {"oldpassword": PASSWORD, "password1": new_password, "password2": new_password})
    assert response.status_code == 302
    cast.bob.refresh_from_db()
    assert cast.bob.check_password(new_password)
    assert "password.changed" in actions(subject=cast.bob)
    assert client.get("/").status_code == 200  # this browser stays signed in


# --- Two-factor --------------------------------------------------------------------------------------


def test_it_asks_a_totp_user_for_the_code(cast: Cast, client: Client) -> None:
    response = sign_in(client, "wendy@bid.example")
    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/2fa/authenticate/"
    assert client.get("/").status_code == 302  # not signed in yet
    page = client.get("/accounts/2fa/authenticate/")
    assert 'label for="id_code">Authenticator code' in page.content.decode()
    response = client.post("/accounts/2fa/authenticate/", {"code": "000000" if totp_now() != "000000" else "111111"})
    assert response.status_code == 200
    assert "mfa.failed" in actions(subject=cast.warden)
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_now()})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert actions(action="login.succeeded") == ["login.succeeded"]


def test_it_signs_in_with_a_recovery_code(cast: Cast, client: Client) -> None:
    codes = RecoveryCodes.activate(cast.officer).generate_codes()
    sign_in(client, "olivia@council.example")
    response = client.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    # A recovery code works once.
    other = Client()
    sign_in(other, "olivia@council.example")
    assert other.post("/accounts/2fa/authenticate/", {"code": codes[0]}).status_code == 200


@pytest.mark.parametrize("role", [Role.WARDEN, Role.BID_ADMIN, Role.CASE_OFFICER, Role.POLICE,
                                  Role.PUBLIC_REALM, Role.DPO])
def test_it_requires_totp_of_every_authority_role(db: None, client: Client, role: str) -> None:
    user = User.objects.create(email=f"new-{role}@bid.example", full_name="New Person", role=role)
    client.force_login(user)
    for url in ["/", "/security/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"] == "/accounts/2fa/totp/activate/"


def test_it_sends_an_authority_user_without_totp_to_set_it_up(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    user = make_user("new-warden@bid.example", "New Warden", Role.WARDEN)
    assert user.requires_mfa
    sign_in(client, user.email)
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/2fa/totp/activate/"
    assert client.get("/security/").headers["Location"] == "/accounts/2fa/totp/activate/"
    reauthenticate(client, "/accounts/2fa/totp/activate/")
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "You cannot continue until this is set up" in html
    assert 'src="data:image/svg+xml;base64,' in html
    secret = client.session[SECRET_SESSION_KEY]
    assert client.post("/accounts/2fa/totp/activate/", {"code": "123"}).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):  # allauth signals after commit
        response = client.post("/accounts/2fa/totp/activate/", {"code": code_for(secret)})
    assert response.status_code == 302
    # Recovery codes are made and shown straight away.
    assert response.headers["Location"] == "/accounts/2fa/recovery-codes/"
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.RECOVERY_CODES).exists()
    codes_page = client.get("/accounts/2fa/recovery-codes/")
    assert codes_page.status_code == 200
    assert "recovery_codes" in codes_page.content.decode()
    assert client.get("/").status_code == 200
    assert "mfa.added" in actions(subject=user)


def test_it_lets_staff_sign_in_without_totp_and_turn_it_on(
    cast: Cast, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    sign_in(client, "alice@books.example")
    assert client.get("/").status_code == 200
    page = client.get("/security/").content.decode()
    assert "Optional for your role" in page
    assert 'href="/accounts/2fa/totp/activate/"' in page
    reauthenticate(client, "/accounts/2fa/totp/activate/")
    client.get("/accounts/2fa/totp/activate/")
    secret = client.session[SECRET_SESSION_KEY]
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/accounts/2fa/totp/activate/", {"code": code_for(secret)}).status_code == 302
    assert "mfa.added" in actions(subject=cast.alice)
    page = client.get("/security/").content.decode()
    assert "<strong>On.</strong>" in page
    # Optional for staff, so they may turn it off again (allauth asks them to confirm).
    assert 'href="/accounts/2fa/totp/deactivate/"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/2fa/totp/deactivate/")
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=cast.alice, type=Authenticator.Type.TOTP).exists()
    assert "mfa.removed" in actions(subject=cast.alice)


def test_it_offers_passkeys(cast: Cast, client: Client) -> None:
    login_page = client.get(LOGIN).content.decode()
    assert 'id="passkey_login"' in login_page
    assert 'action="/accounts/2fa/webauthn/login/"' in login_page
    assert "/static/mfa/js/webauthn.js" in login_page
    sign_in(client, "alice@books.example")
    security = client.get("/security/").content.decode()
    assert 'href="/accounts/2fa/webauthn/add/"' in security
    reauthenticate(client, "/accounts/2fa/webauthn/add/")
    add_page = client.get("/accounts/2fa/webauthn/add/")
    assert add_page.status_code == 200
    html = add_page.content.decode()
    assert 'id="mfa_webauthn_add"' in html
    assert 'name="passwordless"' in html  # can be added as a passkey (sign in without a password)
    assert '"creation_options"' in html


def test_it_renders_the_two_factor_pages_in_the_shell(cast: Cast, client: Client) -> None:
    client.force_login(cast.warden)
    for url in ["/accounts/2fa/", "/accounts/2fa/webauthn/", "/accounts/sessions/",
                "/accounts/password/change/"]:
        response = client.get(url, follow=True)
        assert response.status_code == 200, url
        assert 'class="skip-link"' in response.content.decode(), url
    # Two-factor is mandatory for a warden: allauth's overview offers no "Deactivate".
    assert "/accounts/2fa/totp/deactivate/" not in client.get("/accounts/2fa/").content.decode()


def test_it_does_not_let_people_move_their_account_to_another_email(cast: Cast, client: Client) -> None:
    from allauth.account.models import EmailAddress

    sign_in(client, "bob@books.example")
    for data in [{"action_add": "", "email": "x@elsewhere.example"},
                 {"action_primary": "", "email": "x@elsewhere.example"}]:
        response = client.post("/accounts/email/", data)
        assert response.status_code == 302
        assert response.headers["Location"] == "/security/"
    cast.bob.refresh_from_db()
    assert cast.bob.email == "bob@books.example"
    assert not EmailAddress.objects.filter(email="x@elsewhere.example").exists()
    assert "managed by your manager or the BID office" in client.get("/security/").content.decode()


def test_it_sends_the_django_admin_sign_in_through_two_factor(cast: Cast, client: Client) -> None:
    cast.admin.is_staff = True
    cast.admin.is_superuser = True
    cast.admin.save(update_fields=["is_staff", "is_superuser"])
    response = client.get("/django-admin/login/?next=/django-admin/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/?next=")
    # Posting a password to the admin's own form signs nobody in.
    client.post("/django-admin/login/", {"username": cast.admin.email, "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    assert client.get("/django-admin/").status_code == 302
    sign_in(client, cast.admin.email)
    client.post("/accounts/2fa/authenticate/", {"code": totp_now()})
    assert client.get("/django-admin/").status_code == 200


# --- Lockout (axes) ----------------------------------------------------------------------------------


def test_it_locks_out_after_repeated_failures_with_a_clear_page(cast: Cast, client: Client) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert sign_in(client, "bob@books.example", WRONG).status_code == 200
    response = sign_in(client, "bob@books.example", WRONG)
    assert response.status_code == 429
    html = response.content.decode()
    assert "Too many failed sign-in attempts" in html
    assert "15 minutes" in html
    assert response["Retry-After"] == "900"
    # The right password is refused while locked.
    response = sign_in(client, "bob@books.example")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert "login.locked_out" in actions(subject=cast.bob)
    assert "login.succeeded" not in actions()


def test_it_counts_allauth_failures_per_email_in_axes(cast: Cast, client: Client) -> None:
    sign_in(client, "Bob@Books.example", WRONG)
    sign_in(client, "bob@books.example ", WRONG)
    attempt = AccessAttempt.objects.get()
    assert attempt.username == "bob@books.example"
    assert attempt.failures_since_start == 2
    assert WRONG not in attempt.post_data


def test_it_locks_only_that_email_from_that_address(cast: Cast, client: Client) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "bob@books.example", WRONG, ip="10.0.0.9")
    assert sign_in(Client(), "bob@books.example", ip="10.0.0.9").status_code == 429
    # Another account from the same address, and the same account from elsewhere, still sign in.
    assert sign_in(Client(), "alice@books.example", ip="10.0.0.9").status_code == 302
    assert sign_in(Client(), "bob@books.example", ip="10.0.0.10").status_code == 302


def test_it_unlocks_after_the_cool_off(cast: Cast) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False) as traveller:
        for _ in range(settings.AXES_FAILURE_LIMIT):
            sign_in(Client(), "bob@books.example", WRONG)
        assert sign_in(Client(), "bob@books.example").status_code == 429
        traveller.shift(settings.AXES_COOLOFF_TIME + timedelta(seconds=1))
        assert sign_in(Client(), "bob@books.example").status_code == 302


def test_it_resets_the_failure_count_on_success(cast: Cast) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(Client(), "bob@books.example", WRONG)
    assert sign_in(Client(), "bob@books.example").status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(Client(), "bob@books.example", WRONG).status_code == 200


# --- The security page -------------------------------------------------------------------------------


def test_it_checks_access(cast: Cast, client: Client) -> None:
    assert client.get("/security/").headers["Location"].startswith("/accounts/login/")
    assert client.post("/security/", {"action": "end_others"}).status_code == 302
    assert not AuditEvent.objects.filter(action="session.ended").exists()
    other = Client()
    sign_in(other, "charlie@bakery.example")
    from allauth.usersessions.models import UserSession

    charlies = UserSession.objects.get(user=cast.charlie)
    client.force_login(cast.bob)
    response = client.post("/security/", {"action": "end_session", "session": str(charlies.pk)})
    assert response.status_code == 404
    assert UserSession.objects.filter(pk=charlies.pk).exists()
    assert other.get("/").status_code == 200
    assert client.post("/security/", {"action": "end_session", "session": "x"}).status_code == 404
    assert client.put("/security/").status_code == 405


def test_it_shows_every_role_its_security_page(cast: Cast) -> None:
    for user in [cast.alice, cast.bob, cast.charlie, cast.warden, cast.admin, cast.officer, cast.police,
                 cast.realm, cast.dpo]:
        client = Client()
        client.force_login(user)
        response = client.get("/security/")
        assert response.status_code == 200, user.email
        html = response.content.decode()
        for text in ["Two-factor sign-in", "Passkeys", "Recovery codes", "Change password",
                     "Where you are signed in", "This device"]:
            assert text in html, (user.email, text)
        if user.requires_mfa:
            assert "<strong>On.</strong>" in html
            assert "/accounts/2fa/totp/deactivate/" not in html  # mandatory: no "turn off" offered


# --- Passkeys in a real browser (Chromium's virtual authenticator through the DevTools protocol) -------


@pytest.mark.browser
@pytest.mark.slow
def test_it_adds_a_passkey_and_signs_in_with_it(cast: Cast, live_server_proc: Any, new_context: Any) -> None:
    from playwright.sync_api import expect

    from tests.browser import sign_in as browser_sign_in

    # WebAuthn needs a domain as relying-party id (an IP address is refused), and localhost is a secure context.
    base = f"http://localhost:{live_server_proc.port}"
    context = new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True,
    }})

    browser_sign_in(page, base, cast.alice.email, PASSWORD)
    page.goto(f"{base}/security/")
    page.get_by_role("link", name="Add a passkey").click()
    page.get_by_label("Password").fill(PASSWORD)  # changing how you sign in asks for the password again
    page.get_by_role("button", name="Confirm").click()
    page.get_by_label("Passwordless").check()
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    assert Authenticator.objects.filter(user=cast.alice, type=Authenticator.Type.WEBAUTHN).count() == 1

    page.goto(f"{base}/security/")
    expect(page.get_by_text("(passkey)")).to_be_visible()
    page.get_by_role("button", name="Sign out").first.click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    # Passwordless: no email, no password, no code.
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_role("heading", name=re.compile("Hello, Alice"))).to_be_visible()
    assert AuditEvent.objects.filter(action="login.succeeded", actor=cast.alice).count() == 2
    assert AuditEvent.objects.filter(action="mfa.added", actor=cast.alice, detail__type="webauthn").exists()
