"""ETL Portal settings: one module, every deployment difference read from the environment.

Defaults give the embedded setup (SQLite, django-q2's ORM broker, files under ./data) so a fresh machine
needs no server; DATABASE_URL and REDIS_URL switch to the production path.
"""
import datetime
import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=""):
    return os.environ.get(name, default)


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def env_bool(name, default=False):
    """A yes/no variable. A value it does not know ("ture") is refused: silently reading it as "off" would
    leave, say, ETL_HTTPS=ture serving cookies over plain HTTP without anyone noticing."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a yes/no value: use one of {', '.join(sorted(TRUE_WORDS | FALSE_WORDS))}")


def env_int(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number") from None


def env_list(name, default=""):
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


INIT_KEYS_COMMAND = "python3 scripts/init-keys.py"


def _key_file(path, variable):
    """A key generated into the data folder by scripts/init-keys.py (`make install` runs it). Only read here:
    importing the settings writes nothing, so a missing key stops the start with the command that makes it."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise ImproperlyConfigured(
            f"{variable} is not set and {path} does not exist: run `{INIT_KEYS_COMMAND}` (or `make install`) with "
            f"the same ETL_DATA_DIR to create the data folder's keys, or set {variable}") from None


ETL_DATA_DIR = Path(env("ETL_DATA_DIR") or str(BASE_DIR / "data")).resolve()

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env("DJANGO_SECRET_KEY") or _key_file(ETL_DATA_DIR / "django-secret.key", "DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")


# Secrets at rest: the first key encrypts, every key decrypts (rotation: prepend a new key, run
# `manage.py rotate_secrets`, then drop the old one).
ETL_FERNET_KEYS = env_list("ETL_FERNET_KEYS") or [_key_file(ETL_DATA_DIR / "fernet.key", "ETL_FERNET_KEYS")]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "django_q",
    "django_tables2",
    "crispy_forms",
    "crispy_bootstrap5",
    "simple_history",
    "health_check",  # its /health/ page template
    "projects",
    "connections",
    "tasks",
    "runs",
    "alerts",
    "audit",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
    "accounts",
    "django_htmx",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Times in the viewer's zone (their /account/ setting); htmx requests recognised as such.
    "accounts.middleware.TimeZoneMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Change history: records the logged-in user as the author of every change made during a request.
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login attempt into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "etl_portal.urls"
WSGI_APPLICATION = "etl_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # Times, durations and sizes shown one way on every page.
            "builtins": ["accounts.templatetags.etl_format"],
        },
    },
]

if env("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(env("DATABASE_URL"), conn_max_age=60)}
else:
    # WAL and an IMMEDIATE write lock let the web server and the worker share one SQLite file
    # without "database is locked" errors under normal load.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ETL_DATA_DIR / "etl_portal.sqlite3",
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": env("ETL_TEST_SQLITE_NAME") or None},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# django-axes first: it refuses a locked-out user and address before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "etl_portal.security.LoginLimitBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"  # the dashboard
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("ETL_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves the static files straight from the code's folders (Django's finders), indexed once when a
# worker starts (no autorefresh unless DEBUG): no collectstatic step to forget, nothing written anywhere.
# STATIC_ROOT is only for an operator who wants `collectstatic` to copy them out for a front web server.
STATIC_ROOT = env("ETL_STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = True

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"
DJANGO_TABLES2_TEMPLATE = "django_tables2/bootstrap5.html"
# History is read-only: reverting an old version from the admin would bypass the portal's forms and checks.
SIMPLE_HISTORY_REVERT_DISABLED = True

# --- Running tasks -------------------------------------------------------------------------------
# The longest a single run may take. django-q2 re-delivers a task not acknowledged after `retry`
# seconds, so `retry` stays well above `timeout`: a long extract is never started twice.
ETL_RUN_TIMEOUT = env_int("ETL_RUN_TIMEOUT", 6 * 3600)
# How often a run waiting for a receiver's acknowledgement files looks for them (runs/delivery_proof.py).
ETL_ACK_POLL_SECONDS = env_int("ETL_ACK_POLL_SECONDS", 30)
# A running run renews its lease every third of this; a run whose lease lapsed lost its worker.
ETL_RUN_LEASE_SECONDS = env_int("ETL_RUN_LEASE_SECONDS", 60)
# How long a worker retries a database write (a log line, a status, a lease renewal) while the app database is
# unreachable (a restart), reconnecting with back-off; unset: half the lease (runs/durable.py).
ETL_DB_RETRY_SECONDS = env_int("ETL_DB_RETRY_SECONDS", 0) or None
# SIGTERM to a worker: its running runs may finish for this long, then go back to the queue (runs/shutdown.py).
ETL_SHUTDOWN_GRACE_SECONDS = env_int("ETL_SHUTDOWN_GRACE_SECONDS", 20)
# Tests only: every lease renewal fails, as when only the watcher's connection is cut (tests/test_run_faults.py).
ETL_TEST_FAIL_LEASE_RENEWAL = env("ETL_TEST_FAIL_LEASE_RENEWAL", "") == "1"
# The housekeeping leader (projects/housekeeping.py): another process takes over this long after it stopped.
ETL_LEADER_LEASE_SECONDS = env_int("ETL_LEADER_LEASE_SECONDS", 10)
# /metrics: open (counts only) unless set; then Authorization: Bearer <token> is required.
ETL_METRICS_TOKEN = env("ETL_METRICS_TOKEN", "")
# Where delivered files are kept for download and resend (runs/archive.py): blank = this node's ETL_DATA_DIR;
# a folder every node mounts for several worker hosts.
ETL_ARCHIVE_DIR = env("ETL_ARCHIVE_DIR", "")
# Or a file-store connection of the portal's own (its id or name: SFTP, SMB, FTP) for hosts that share no folder.
ETL_ARCHIVE_CONNECTION = env("ETL_ARCHIVE_CONNECTION", "")
# Niceness a django-q2 worker adds to itself (projects/housekeeping.py start_heartbeat).
ETL_WORKER_NICE = env_int("ETL_WORKER_NICE", 5)
ETL_PROGRESS_EVERY_ROWS = env_int("ETL_PROGRESS_EVERY_ROWS", 100_000)
ETL_CONNECT_TIMEOUT = env_int("ETL_CONNECT_TIMEOUT", 15)
# A trigger whose run is this many seconds late (the worker was down) is recorded as missed, not run late.
ETL_MISFIRE_GRACE_SECONDS = env_int("ETL_MISFIRE_GRACE_SECONDS", 60)
# The script sandbox (runs/sandbox.py): the bubblewrap program (a name on the PATH or a full path), and the
# unprivileged account scripts run as when the portal runs as root.
ETL_SANDBOX_BWRAP = env("ETL_SANDBOX_BWRAP", "bwrap")
ETL_SANDBOX_USER = env("ETL_SANDBOX_USER", "etl-sandbox")
# `manage.py serve`: where gunicorn listens and how many worker processes it runs.
ETL_LISTEN = env("ETL_LISTEN", "127.0.0.1:8000")
ETL_WEB_WORKERS = env_int("ETL_WEB_WORKERS", 2)
# The address people open the portal at: every email and webhook links back to its run under it.
ETL_BASE_URL = (env("ETL_BASE_URL") or f"http://{ETL_LISTEN}").rstrip("/")
# Folders on this server that SQLite and local-folder connections may use (comma-separated; symlinks resolved).
# The default is only the demo data that `seed_demo` writes, which lives beside the data folder, never in it:
# the data folder (database, keys, run folders, caches, script environments) is refused whatever this says.
ETL_DEMO_DIR = ETL_DATA_DIR.with_name(ETL_DATA_DIR.name + "-demo")
ETL_LOCAL_ROOTS = [Path(root).resolve() for root in env_list("ETL_LOCAL_ROOTS")] or [ETL_DEMO_DIR]
# A staging install sets this: every notification email goes there instead (one per original recipient).
ETL_EMAIL_TEST_ADDRESS = env("ETL_EMAIL_TEST_ADDRESS")
# The user a changing management command acts for when it has no --user (projects.access.command_user).
# Blank: the server's operator, whose commands check no role.
ETL_COMMAND_USER = env("ETL_COMMAND_USER")

Q_CLUSTER = {
    "name": env("ETL_QUEUE_NAME", "etl_portal"),
    "workers": env_int("ETL_WORKERS", 2),
    "timeout": ETL_RUN_TIMEOUT,
    "retry": ETL_RUN_TIMEOUT + 1800,
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "poll": 0.2,  # ORM broker: how long an idle cluster waits before looking for work again (trigger lateness)
    "label": "Task queue",
}
if env("REDIS_URL"):
    Q_CLUSTER["redis"] = env("REDIS_URL")
else:
    Q_CLUSTER["orm"] = "default"

# --- Hardening ---------------------------------------------------------------------------------------
# Failed logins: django-axes locks out one user name *from one address* after ETL_LOGIN_ATTEMPTS failures for
# ETL_LOGIN_COOLOFF_MINUTES (the same user elsewhere, and other users from that address, can still log in, so
# a typo-prone colleague or a guessing stranger cannot lock everyone out). The admin login is covered too.
AXES_FAILURE_LIMIT = env_int("ETL_LOGIN_ATTEMPTS", 5)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env_int("ETL_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "etl_portal.security.lockout_response"
AXES_CLIENT_IP_CALLABLE = "etl_portal.security.client_ip"

# Behind a reverse proxy (ETL_BEHIND_PROXY=1) the proxy's X-Forwarded-Proto says whether the visitor used HTTPS,
# and the last X-Forwarded-For entry (the one the proxy appended) is the visitor's address for the login limits.
ETL_BEHIND_PROXY = env_bool("ETL_BEHIND_PROXY", False)
if ETL_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Served over HTTPS (ETL_HTTPS=1): cookies only over HTTPS, and browsers told to use nothing else for a year.
ETL_HTTPS = env_bool("ETL_HTTPS", False)
if ETL_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("ETL_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("ETL_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_SSL_REDIRECT = env_bool("ETL_SSL_REDIRECT", False)

# Content-Security-Policy on every response (django-csp): scripts and styles only from the portal's own static
# files, never inline, so an injected <script> or on...= attribute does not run.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("ETL_LOG_LEVEL", "INFO")},
}

# --- REST API (api/): token or session authentication; the rights come from projects.access, as for pages ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.TokenAuthentication",
                                       "rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend",
                                "rest_framework.filters.OrderingFilter"],
    "DEFAULT_PAGINATION_CLASS": "api.errors.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "api.schema.PortalAutoSchema",  # documents the error answers of every operation
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ETL Portal API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from the drf-spectacular-sidecar package (same origin), never a CDN: the CSP allows 'self' only.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
