"""NTARS settings: one module, driven by environment variables.

With no environment at all it runs the embedded default (SQLite + in-memory channel layer). Production
mode (NTARS_ENV=production) refuses to start without a real SECRET_KEY. Any variable can also be given
as NAME_FILE, a path whose contents are the value (for container secrets).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """Read NAME, or the file named by NAME_FILE, or fall back to default."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text(encoding="utf-8").strip()
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = env(name, "")
    if value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = env(name, "")
    return int(value) if value else default


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


NTARS_ENV = env("NTARS_ENV", "development")
PRODUCTION = NTARS_ENV == "production"
TESTING = envbool("NTARS_TESTING", "pytest" in sys.modules)
DEBUG = envbool("DEBUG", False)

_INSECURE_KEY = "django-insecure-ntars-embedded-default-not-for-production"
SECRET_KEY = env("SECRET_KEY", "" if PRODUCTION else _INSECURE_KEY)
if PRODUCTION and (len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure")):
    raise ImproperlyConfigured("NTARS_ENV=production needs SECRET_KEY (or SECRET_KEY_FILE) of 50+ random characters")

PORT = envint("PORT", 8000)
SITE_URL = env("SITE_URL", f"http://127.0.0.1:{PORT}").rstrip("/")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", f"127.0.0.1,localhost,{urlsplit(SITE_URL).hostname}")
# Full origins (scheme://host:port) allowed to open the WebSocket and to POST forms.
ALLOWED_ORIGINS = envlist("ALLOWED_ORIGINS", SITE_URL)
CSRF_TRUSTED_ORIGINS = ALLOWED_ORIGINS

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # allauth's passkey and session lists use it
    "channels",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "axes",
    "members",
    "alerts",
    "chat",
    "galleries",
    "reports",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "ntars.middleware.PrivateNoStoreMiddleware",
    # Before the timeout and the gate, which tell the person why they were signed out or redirected.
    "django.contrib.messages.middleware.MessageMiddleware",
    "members.middleware.SessionTimeoutMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "members.middleware.AccountGateMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Axes last, so it sees the final authentication outcome.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ntars.urls"
ASGI_APPLICATION = "ntars.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "frontend.context_processors.navigation",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------------------
DATA_DIR = Path(env("NTARS_DATA_DIR", str(BASE_DIR / "var")))
DATABASE_URL = env("DATABASE_URL", "")
if not DATABASE_URL:
    # Zero configuration: the embedded default's data directory (not in git) appears on first use.
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{DATA_DIR / 'ntars.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every sync_to_async thread would hold its own connection: pool them instead.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": envint("DB_POOL_MAX", 20)}
else:
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
TEST_DATABASE_NAME = env("TEST_DATABASE_NAME", "")
if TEST_DATABASE_NAME:
    DATABASES["default"]["TEST"] = {"NAME": TEST_DATABASE_NAME}
elif TESTING and DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (in RAM where there is /dev/shm) rather than :memory:, so a Daphne subprocess under test shares it.
    _shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else DATA_DIR  # noqa: S108 (test-only, per-pid name)
    DATABASES["default"]["TEST"] = {"NAME": str(_shm / f"ntars-test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": env("CHANNEL_PREFIX", "ntars"),
                "capacity": envint("CHANNEL_CAPACITY", 1000),
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}

MEDIA_ROOT = Path(env("MEDIA_ROOT", str(DATA_DIR / "media")))
# Private files are served only through views that check access; there is deliberately no MEDIA_URL.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": MEDIA_ROOT}},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not TESTING
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The service worker must be served from the root to control the whole site.
WHITENOISE_ROOT = BASE_DIR / "frontend" / "root"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG or TESTING

# --- Authentication ----------------------------------------------------------------------------------
AUTH_USER_MODEL = "members.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "account_login"

ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ADAPTER = "members.adapters.AccountAdapter"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_PREVENT_ENUMERATION = True
# Axes does the lockout; allauth's own login limit would only hide Axes' clearer message.
ACCOUNT_RATE_LIMITS = {"login_failed": False} if TESTING else {"login_failed": "20/5m/ip,10/5m/key"}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = not PRODUCTION
MFA_TOTP_ISSUER = "NTARS"
USERSESSIONS_TRACK_ACTIVITY = True

AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "login"
# Allauth authenticates with email=..., which Axes would not find under "login": normalise it ourselves.
AXES_USERNAME_CALLABLE = "members.signals.axes_username"
AXES_LOCKOUT_CALLABLE = "members.signals.axes_lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "members/locked_out.html"
AXES_VERBOSE = False
AXES_ENABLE_ACCESS_FAILURE_LOG = False

# Idle timeout: the cookie's age, renewed on every request. Absolute timeout: enforced by middleware.
SESSION_COOKIE_AGE = envint("SESSION_IDLE_MINUTES", 30) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_ABSOLUTE_SECONDS = envint("SESSION_ABSOLUTE_HOURS", 12) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = False

# --- Security headers --------------------------------------------------------------------------------
SECURE_COOKIES = envbool("SECURE_COOKIES", PRODUCTION)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("BEHIND_PROXY", PRODUCTION) else None
SECURE_HSTS_SECONDS = envint("HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
MAP_TILE_URL = env("MAP_TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
_tile_origin = "{0.scheme}://{0.netloc}".format(urlsplit(MAP_TILE_URL)) if "://" in MAP_TILE_URL else ""
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:", "blob:"] + ([_tile_origin] if _tile_origin else []),
    "connect-src": [CSP.SELF],
    "worker-src": [CSP.SELF],
    "manifest-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

DATA_UPLOAD_MAX_MEMORY_SIZE = envint("UPLOAD_MAX_BYTES", 15 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Reports (issue 5): a photo over REPORT_IMAGE_MAX_BYTES or a request over REPORT_UPLOAD_MAX_BYTES gets 413;
# an image over REPORT_IMAGE_MAX_PIXELS is refused as a possible decompression bomb (Pillow's cap stays on too).
REPORT_IMAGE_MAX_BYTES = envint("REPORT_IMAGE_MAX_BYTES", 12 * 1024 * 1024)
REPORT_MAX_IMAGES = envint("REPORT_MAX_IMAGES", 8)
REPORT_UPLOAD_MAX_BYTES = envint("REPORT_UPLOAD_MAX_BYTES", 64 * 1024 * 1024)
REPORT_IMAGE_MAX_PIXELS = envint("REPORT_IMAGE_MAX_PIXELS", 89_478_485)  # Pillow's default MAX_IMAGE_PIXELS
# Where the report map's pin starts when the reporter's business has no coordinates (Northampton centre).
REPORT_MAP_DEFAULT = tuple(float(v) for v in env("REPORT_MAP_DEFAULT", "52.2371,-0.8954").split(","))

# --- Email -------------------------------------------------------------------------------------------
# Production mails through SMTP (a local MTA unless EMAIL_URL names one); never the demo's file outbox.
EMAIL_URL = env("EMAIL_URL", "smtp://localhost:25" if PRODUCTION else "")
if EMAIL_URL:
    _email = urlsplit(EMAIL_URL)
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": _email.hostname or "localhost",
                "port": _email.port or 587,
                "username": _email.username or "",
                "password": _email.password or "",
                "use_tls": _email.scheme == "smtp+tls",
            },
        }
    }
else:
    # The embedded default writes emails to files, so demo invitations can be opened.
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": str(DATA_DIR / "outbox")},
        }
    }
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "NTARS <ntars@northamptonbid.example>")

# --- NTARS policy ------------------------------------------------------------------------------------
INVITATION_DAYS = envint("INVITATION_DAYS", 7)
GROUP_RETENTION_DEFAULT_SECONDS = 7 * 24 * 3600
GROUP_RETENTION_MIN_SECONDS = 3600
GROUP_RETENTION_MAX_SECONDS = 90 * 24 * 3600
WORKER_TICK_SECONDS = envint("WORKER_TICK_SECONDS", 5)

# --- Web Push (docs/alerts.md) -------------------------------------------------------------------------
# VAPID key: PEM (or base64url raw/DER) in VAPID_PRIVATE_KEY, or a file named by VAPID_PRIVATE_KEY_FILE
# (`manage.py vapid_keys` writes one). Empty: generated on first use into DATA_DIR/vapid_private.pem,
# unless VAPID_KEY_AUTOGENERATE is off (it is off in production: configure the key there).
VAPID_PRIVATE_KEY = env("VAPID_PRIVATE_KEY", "")
VAPID_PUBLIC_KEY = env("VAPID_PUBLIC_KEY", "")
VAPID_SUBJECT = env("VAPID_SUBJECT", "mailto:ntars@northamptonbid.example")
VAPID_KEY_AUTOGENERATE = envbool("VAPID_KEY_AUTOGENERATE", not PRODUCTION)
# Subscription endpoints on private, loopback or link-local addresses are refused (SSRF), except hosts/IPs
# in the allow-list (the tests' fake push service on 127.0.0.1).
PUSH_ALLOW_PRIVATE_ENDPOINTS = envbool("PUSH_ALLOW_PRIVATE_ENDPOINTS", False)
PUSH_ENDPOINT_ALLOWLIST = envlist("PUSH_ENDPOINT_ALLOWLIST", "")
PUSH_CONCURRENCY = envint("PUSH_CONCURRENCY", 32)

# Hub limits (see docs/protocol.md).
HUB_MAX_FRAME_BYTES = envint("HUB_MAX_FRAME_BYTES", 256 * 1024)
HUB_MAX_ENVELOPE_BYTES = envint("HUB_MAX_ENVELOPE_BYTES", 64 * 1024)
HUB_RATE_PER_SECOND = float(env("HUB_RATE_PER_SECOND", "10"))
HUB_RATE_BURST = envint("HUB_RATE_BURST", 30)
HUB_MAX_GROUPS = envint("HUB_MAX_GROUPS", 50)
HUB_REPLAY_LIMIT = envint("HUB_REPLAY_LIMIT", 500)
HUB_ABUSE_STRIKES = envint("HUB_ABUSE_STRIKES", 20)
# Each socket re-subscribes and fetches anything it missed this often; membership is re-read at most this stale.
HUB_RECONCILE_SECONDS = float(env("HUB_RECONCILE_SECONDS", "12"))
HUB_MEMBERSHIP_TTL_SECONDS = float(env("HUB_MEMBERSHIP_TTL_SECONDS", "5"))
# A presence row not refreshed for this long belongs to a dead process and is ignored.
HUB_PRESENCE_STALE_SECONDS = envint("HUB_PRESENCE_STALE_SECONDS", 45)
# E2EE chat (docs/security.md): server franking keys live at least as long as the longest report window, then are
# destroyed; a group key older than EPOCH_MAX_AGE_HOURS asks the next sender to rotate; attachment size cap.
FRANKING_KEY_DAYS = envint("FRANKING_KEY_DAYS", 90)
EPOCH_MAX_AGE_HOURS = envint("EPOCH_MAX_AGE_HOURS", 24)
CHAT_BLOB_MAX_BYTES = envint("CHAT_BLOB_MAX_BYTES", 10 * 1024 * 1024)

# --- Logging: never message text, passwords or tokens ------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = False
USE_TZ = True
USERSESSIONS_ADAPTER = "members.adapters.UserSessionsAdapter"
