"""Settings: production refuses a weak SECRET_KEY, *_FILE secrets, deploy checks, CSP with nonces, Argon2."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.hashers import get_hasher
from django.test import Client

from members.models import User
from tests.cast import Cast
from tests.servers import REPO

PRODUCTION_ENV = {
    "NTARS_ENV": "production",
    "ALLOWED_HOSTS": "ntars.example",
    "SITE_URL": "https://ntars.example",
}


def run_python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python in a fresh process with exactly the NTARS environment given (nothing leaks from pytest)."""
    base = {k: v for k, v in os.environ.items()
            if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"}}
    base.update({"DJANGO_SETTINGS_MODULE": "ntars.settings", "NTARS_TESTING": "false"})
    base.update(env)
    command = [sys.executable, *args] if args else [sys.executable, "-c", code]
    with tempfile.TemporaryDirectory(prefix="ntars-settings-test-") as data_dir:  # never the repository's var/
        base.setdefault("NTARS_DATA_DIR", data_dir)
        return subprocess.run(command, cwd=REPO, env=base, capture_output=True, text=True, timeout=120, check=False)


def random_key() -> str:
    return secrets.token_urlsafe(48)  # 64 characters


# --- Production mode ---------------------------------------------------------------------------------


def test_it_refuses_to_start_in_production_without_a_secret_key() -> None:
    result = run_python("import django; django.setup()", PRODUCTION_ENV)
    assert result.returncode != 0
    assert "NTARS_ENV=production needs SECRET_KEY (or SECRET_KEY_FILE) of 50+ random characters" in result.stderr


def test_it_refuses_a_short_or_insecure_secret_key_in_production() -> None:
    for key in ["too-short", "django-insecure-" + "x" * 60]:
        result = run_python("import django; django.setup()", {**PRODUCTION_ENV, "SECRET_KEY": key})
        assert result.returncode != 0, key
        assert "needs SECRET_KEY" in result.stderr


def test_it_starts_without_configuration_outside_production() -> None:
    result = run_python("import django; django.setup(); print('ok')", {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_it_reads_the_secret_key_from_a_file(tmp_path: Path) -> None:
    key = random_key()
    key_file = tmp_path / "secret_key"
    key_file.write_text(key + "\n", encoding="utf-8")
    code = ("import django; django.setup(); from django.conf import settings; "
            f"assert settings.SECRET_KEY == {key!r}; print('ok')")
    result = run_python(code, {**PRODUCTION_ENV, "SECRET_KEY_FILE": str(key_file)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    # The file wins over nothing at all, and a missing file is an error, not a silent default.
    result = run_python("import django; django.setup()",
                        {**PRODUCTION_ENV, "SECRET_KEY_FILE": str(tmp_path / "missing")})
    assert result.returncode != 0


def test_it_passes_the_deploy_checks_in_production() -> None:
    result = run_python("", {**PRODUCTION_ENV, "SECRET_KEY": random_key()},
                        "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_uses_secure_cookies_and_hsts_in_production() -> None:
    code = """
import django, json
django.setup()
from django.conf import settings as s
from django.test import Client
response = Client().get("/healthz", secure=True, headers={"host": "ntars.example"})
plain = Client().get("/accounts/login/", headers={"host": "ntars.example"})
print(json.dumps({
    "session_secure": s.SESSION_COOKIE_SECURE, "csrf_secure": s.CSRF_COOKIE_SECURE,
    "session_httponly": s.SESSION_COOKIE_HTTPONLY, "hsts": response.headers.get("Strict-Transport-Security"),
    "redirect": [plain.status_code, plain.headers.get("Location")],
}))
"""
    result = run_python(code, {**PRODUCTION_ENV, "SECRET_KEY": random_key()})
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["session_secure"] is True
    assert facts["csrf_secure"] is True
    assert facts["session_httponly"] is True
    assert facts["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert facts["redirect"] == [301, "https://ntars.example/accounts/login/"]


def test_it_keeps_plain_cookies_on_the_embedded_default() -> None:
    # The demo runs on http://127.0.0.1: secure cookies there would make signing in impossible.
    assert settings.SESSION_COOKIE_SECURE is False
    assert settings.SECURE_HSTS_SECONDS == 0


# --- Content Security Policy -------------------------------------------------------------------------


def assert_strict_csp(response: object) -> None:
    header = response.headers["Content-Security-Policy"]  # type: ignore[attr-defined]
    assert "'unsafe-inline'" not in header and "'unsafe-eval'" not in header
    match = re.search(r"script-src 'self' 'nonce-([A-Za-z0-9_\-+/=]+)'", header)
    assert match is not None, header
    nonce = match.group(1)
    html = response.content.decode()  # type: ignore[attr-defined]
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts, "every page loads app.js"
    for tag in scripts:
        if "src=" in tag or 'type="application/json"' in tag:
            continue
        raise AssertionError(f"inline script: {tag}")
    assert f'nonce="{nonce}"' in html
    assert all(f'nonce="{nonce}"' in tag for tag in scripts if "src=" in tag)
    assert not re.search(r"\son[a-z]+=\"", html), "inline event handler"
    assert ' style="' not in html, "inline style"
    assert "style-src 'self'" in header


def test_it_sends_a_strict_csp_with_a_nonce_on_sign_in_pages(cast: Cast, client: Client) -> None:
    for url in ["/accounts/login/", "/accounts/password/reset/", "/accounts/signup/"]:
        assert_strict_csp(client.get(url))
    client.post("/accounts/login/", {"login": "wendy@bid.example", "password": "correct-horse-battery-staple"})
    assert_strict_csp(client.get("/accounts/2fa/authenticate/"))


def test_it_sends_a_strict_csp_with_a_fresh_nonce_on_signed_in_pages(cast: Cast, client: Client) -> None:
    client.force_login(cast.alice)
    nonces = set()
    for url in ["/", "/security/", "/accounts/sessions/", "/accounts/2fa/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_strict_csp(response)
        nonces.add(re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1))  # type: ignore[union-attr]
    assert len(nonces) == 4  # a new nonce per response


# --- Passwords ---------------------------------------------------------------------------------------


def test_it_hashes_passwords_with_argon2_first(db: None) -> None:
    from ntars import settings as project_settings

    # The suite swaps in cheap Argon2 parameters (tests/hashers.py); the project's own list starts with Argon2.
    assert project_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert get_hasher().algorithm == "argon2"
    user = User.objects.create_user("new@bid.example", "a-long-enough-passphrase", full_name="New", role="dpo")
    assert user.password.startswith("argon2$")
