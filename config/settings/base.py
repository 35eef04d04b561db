"""Settings, read only from the environment.

Two ways to run, one settings module:

* **Embedded default** (no ``DATABASE_URL``): SQLite and a filesystem Celery broker under
  ``VAR_DIR``; a secret key is generated once and kept in ``VAR_DIR/secret_key``.
* **Server** (``DATABASE_URL`` set): ``SECRET_KEY`` is required, and ``REDIS_URL`` (if set) becomes the
  Celery broker, the cache and the channel layer.

Every variable is documented in ``.env.example``. Importing this module writes nothing: the files the
embedded default keeps under ``VAR_DIR`` are created at start-up, by ``config.embedded.prepare()``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.embedded import read_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
EMBEDDED = not env.str("DATABASE_URL", default="")

DEBUG = env.bool("DEBUG", default=False)

# Where the embedded default keeps the key that start-up generates (config.embedded.prepare).
SECRET_KEY_FILE = VAR_DIR / "secret_key"


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if not EMBEDDED:
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is set.")
    # "" until start-up has generated the key; Django refuses an empty key when it is first used.
    return read_secret_key(SECRET_KEY_FILE)


SECRET_KEY = _secret_key()

# The address people and clients use to reach this server; printed API URLs are built from it,
# and an https:// address switches on secure cookies, HSTS and the HTTPS redirect.
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
_HTTPS = PUBLIC_URL.startswith("https://")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PUBLIC_URL] if _HTTPS else [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "auditlog",
    "social_django",
    "tenants",
    "accounts",
    "access",
    "billing",
    "audit",
    "orchestration",
    "console",
    "django_htmx",
]

MIDDLEWARE = [
    # First: answers /healthz, /readyz and /metrics before host checks, and times everything else.
    "config.observability.ObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.http.RefuseNulMiddleware",
    "core.http.BodyTooLargeMiddleware",
    # WhiteNoise, plus Prefect's UI bundles prepared from the installed package (console.ui_bundle).
    "console.ui_bundle.UiStaticFilesMiddleware",
    "audit.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "access.middleware.SessionCredentialMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "audit.middleware.AuditlogMiddleware",
]

ROOT_URLCONF = "config.urls"
CSRF_FAILURE_VIEW = "core.errors.json_csrf_failure"
WSGI_APPLICATION = "config.wsgi.application"
# Threads per server process that run HTTP requests (Django is served as WSGI inside the ASGI server).
HTTP_THREADS = env.int("HTTP_THREADS", default=12)
# A request's body is read before it takes one of those threads: within this many seconds of the
# request's start (else 408), and at most this many bytes (else 413).
HTTP_BODY_TIMEOUT_SECONDS = env.float("HTTP_BODY_TIMEOUT_SECONDS", default=30.0)
# 5 MiB, Prefect Cloud's limit on every route (413 beyond it, core.http.BodyTooLargeMiddleware).
HTTP_MAX_BODY_BYTES = env.int("HTTP_MAX_BODY_BYTES", default=5 * 1024 * 1024)
# Django's own cap on a body read into memory answers 400: set to the same size so the 413 comes first.
DATA_UPLOAD_MAX_MEMORY_SIZE = HTTP_MAX_BODY_BYTES
# A request's headers must arrive within this many seconds of its first byte (else 408 and the
# connection closes): a client trickling header lines cannot hold connections open (core.serving).
HTTP_HEADER_TIMEOUT_SECONDS = env.float("HTTP_HEADER_TIMEOUT_SECONDS", default=10.0)
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------------
# SQLite, whether the embedded default or named by a ``sqlite:///`` DATABASE_URL, is opened the same
# way, so concurrent writers wait their turn instead of failing with "database is locked": WAL (the
# web server, the worker and beat share the file, readers never block the writer), every transaction
# takes the write lock when it begins (IMMEDIATE: a transaction that read first cannot fail to
# upgrade, which the busy timeout does not cover), and a writer waits up to SQLITE_BUSY_TIMEOUT
# seconds for the lock. What still cannot get the lock answers 503 with Retry-After (core.errors).
SQLITE_BUSY_TIMEOUT = env.float("SQLITE_BUSY_TIMEOUT", default=20.0)
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": SQLITE_BUSY_TIMEOUT,
}
if EMBEDDED:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "db.sqlite3")}}
else:
    DATABASES = {"default": env.db_url("DATABASE_URL")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Options given in the URL (``?timeout=5``) win over these.
    DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}


def _pool_reset(connection) -> None:
    # Imported when the pool first takes a connection back: settings import no app at load.
    from tenants.rls import pool_reset

    pool_reset(connection)


if not EMBEDDED:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
        "DATABASE_POOL", default=True
    ):
        # Under ASGI, request threads come and go: persistent per-thread connections would pile up
        # until PostgreSQL refuses more. A bounded pool per process shares a few connections.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=16),
            "timeout": env.int("DATABASE_POOL_TIMEOUT", default=30),
            # A connection coming back carries no row-level security workspace to its next user.
            "reset": _pool_reset,
        }
        # No check before each use: psycopg_pool's check walks dead connections one at a time with a
        # growing sleep between them (1 s, 2 s, 4 s…), so after a restart or a terminated backend,
        # which kill every idle connection at once, requests hung for up to the pool's timeout. A
        # dead connection now fails its request at once with a retryable 503, and that failure has
        # the pool check all its idle connections (core.dbpool), so the retry gets a live one.
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
        # A connection is checked before use (Django's check for persistent ones), so one that died
        # while idle (a restart, a failover, a terminated backend) is replaced, not handed out.
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not env.bool(
    "DATABASE_JIT", default=False
):
    # PostgreSQL's JIT compiles a query whose estimated cost passes ``jit_above_cost``: on the UI's
    # aggregates over a big workspace (a day of task runs counted in 20 buckets) compiling took
    # 200 ms of a 230 ms query, every time, since nothing is cached between statements. The
    # queries here are short and many, so it is off for the server's connections (set at connect,
    # ``options=-c jit=off``). Behind PgBouncer, list ``options`` in its
    # ``ignore_startup_parameters`` or set DATABASE_JIT=true and ``ALTER ROLE … SET jit = off``.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, cache and channel layer -------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")

# Every Redis command a request waits on (the cache, the rate limiter, publishing live events and
# Celery tasks) gives up after this many seconds, connecting or reading, so a Redis that stops
# answering (hung, failing over, restarting behind a half-open connection) costs a request at most
# a few of these, never minutes; what needed Redis then degrades (the database answers instead of
# the cache) or is refused as retryable.
REDIS_TIMEOUT_SECONDS = env.float("REDIS_TIMEOUT_SECONDS", default=1.0)
if REDIS_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("REDIS_TIMEOUT_SECONDS must be a positive number of seconds.")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
                "health_check_interval": 30,
            },
        }
    }
    # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s that channels_redis blocks
    # in BZPOPMIN: the read then times out and kills the consumer (a dropped /events/out socket).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Live events do not go through the channel layer (see orchestration/events/hub.py).
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 30,
                        "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                    }
                ],
                "capacity": 1000,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery --------------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
# With acks_late a task is acknowledged when it ends: a worker killed mid-task leaves it
# unacknowledged, and the Redis broker delivers it again this many seconds after it was taken. It
# must exceed the longest task and any countdown/ETA a task is sent with (the automation actions'
# retry waits up to 8 s), or a task still running, or still waiting, is delivered a second time.
CELERY_BROKER_VISIBILITY_TIMEOUT = env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=3600)
if CELERY_BROKER_VISIBILITY_TIMEOUT <= 0:
    raise ImproperlyConfigured("CELERY_BROKER_VISIBILITY_TIMEOUT must be a positive number of seconds.")
if CELERY_BROKER_URL.startswith(("redis://", "rediss://", "redis+socket://", "sentinel://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
        # kombu looks for tasks past their visibility timeout when a worker starts and then on a
        # timer: every ``unacked_restore_interval`` seconds, scanning only every
        # ``unacked_restore_throttle``-th tick (by default 10 s x 10, so a task could wait 100 s
        # more). Here every tick scans, at most a tenth of the timeout apart (10 s at most).
        "unacked_restore_interval": max(1, min(10, CELERY_BROKER_VISIBILITY_TIMEOUT // 10)),
        "unacked_restore_throttle": 1,
        # The sweep's lock, left held by a worker killed in the middle of a sweep, blocks every
        # other sweep until it expires (300 s by default).
        "unacked_mutex_expire": max(10, min(300, CELERY_BROKER_VISIBILITY_TIMEOUT)),
        # Without these kombu waits forever on a Redis that stops answering: a request publishing
        # a task (after its commit) would hold its thread for good.
        "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        "socket_timeout": max(REDIS_TIMEOUT_SECONDS, 2.0),
    }
    # Publishing a task tries again at most twice, briefly (Celery's default waits up to ~1 s more).
    CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_TIMEOUT_SECONDS
    CELERY_TASK_PUBLISH_RETRY_POLICY = {
        "max_retries": 2,
        "interval_start": 0,
        "interval_step": 0.1,
        "interval_max": 0.2,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Beat sends the schedule only while it holds the beat lock (config.beat): on Redis with REDIS_URL,
# else a file lock in VAR_DIR. A beat that stops renewing it loses it after this many seconds, and
# a standby beat takes over.
CELERY_BEAT_SCHEDULER = "config.beat:SingleBeatScheduler"
BEAT_LOCK_TTL_SECONDS = env.float("BEAT_LOCK_TTL_SECONDS", default=30.0)
CELERY_TIMEZONE = "UTC"

# --- Auth -------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
# Seconds a process remembers who an API key is and its access to a workspace (0: ask the database
# on every request). Any change to keys, users, memberships or grants drops the memo everywhere.
AUTH_CACHE_SECONDS = env.int("AUTH_CACHE_SECONDS", default=10)
# --- Single sign-on: where domain-verification TXT records are looked up (default: the system's resolvers).
SSO_DNS_NAMESERVERS = env.list("SSO_DNS_NAMESERVERS", default=[])
SSO_DNS_PORT = env.int("SSO_DNS_PORT", default=53)
SSO_DNS_TIMEOUT_SECONDS = env.float("SSO_DNS_TIMEOUT_SECONDS", default=5.0)
# The Ed25519 seed (base64, 32 bytes) that signs audit export manifests (default: derived from
# SECRET_KEY); its public key is what auditors verify with.
AUDIT_SIGNING_KEY = env.str("AUDIT_SIGNING_KEY", default="")
# Who says how long an account keeps its audit trail: the billing plan (wired here, so audit imports no
# app above it).
AUDIT_RETENTION_POLICY = "billing.entitlements.audit_retention_policy"
# Who counts an account's deployments for its plan's limits (wired here, so billing imports no app
# above it).
BILLING_DEPLOYMENT_COUNTER = "orchestration.selectors.usage.deployments_count_for_account"
BILLING_WEBHOOK_COUNTER = "orchestration.selectors.usage.webhooks_count_for_account"
# Key material for identity-provider secrets at rest (default: derived from SECRET_KEY).
SSO_SECRET_KEY = env.str("SSO_SECRET_KEY", default="")
# Key material for block document data at rest (comma-separated, newest first, for rotation;
# default: derived from SECRET_KEY).
BLOCKS_SECRET_KEY = env.str("BLOCKS_SECRET_KEY", default="")
# Sessions that an identity provider started last this long unless the account sets
# auth_expiration_seconds; SAML validity windows are checked with this much clock skew.
SSO_SESSION_SECONDS = env.int("SSO_SESSION_SECONDS", default=60 * 60 * 12)
SSO_CLOCK_SKEW_SECONDS = env.int("SSO_CLOCK_SKEW_SECONDS", default=120)
# The SSO backends are listed so Django's authenticate() finds them; each instance is bound to one
# stored identity provider (accounts.sso.backends). Sessions are then ModelBackend sessions.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "accounts.sso.backends.AccountSamlAuth",
    "accounts.sso.backends.AccountOidcAuth",
]
SOCIAL_AUTH_USER_MODEL = "accounts.User"
SOCIAL_AUTH_SANITIZE_REDIRECTS = True
SOCIAL_AUTH_LOGIN_REDIRECT_URL = "/"
SOCIAL_AUTH_LOGIN_ERROR_URL = "/login/"
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_uid",
    "accounts.sso.pipeline.check_identity",
    "social_core.pipeline.social_auth.social_user",
    "accounts.sso.pipeline.resolve_user",
    "social_core.pipeline.social_auth.associate_user",
    "accounts.sso.pipeline.sync_groups",
)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="controlplane@localhost")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- HTTP security ------------------------------------------------------------------------------------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_HTTPS)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 12)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_HTTPS)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if _HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=_HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The client address (audit records, key usage, the IP allowlist): the socket peer, unless the peer
# is one of TRUSTED_PROXIES (CIDRs), whose X-Forwarded-For is then walked from the right past every
# trusted proxy. TRUSTED_PROXY_COUNT (a fixed number of hops) is used only without TRUSTED_PROXIES.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- I18N / static ---------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "static"))
# WhiteNoise also serves the apps' own static files (the console's htmx) found where they live, so a
# server started before `collectstatic` (the test server) serves them too; `make run` collects first.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- DRF ----------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "access.authentication.ApiKeyAuthentication",
        "access.authentication.SessionCsrfAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.ControlPlaneAutoSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# The OpenAPI document of the control plane's own API (GET /api/schema/; config.schema). It names
# routes and shapes only, no tenant's data, so it is public, as Prefect Cloud's and Sentry's are.
SPECTACULAR_SETTINGS = {
    "TITLE": "Control plane API",
    "VERSION": "0.1.0",
    "DESCRIPTION": (
        "The API of the self-hosted control plane for Prefect: accounts and workspaces, roles, "
        "memberships, teams, service accounts (bots) and API keys, invitations, workspace access, "
        "audit events, IP allowlist, SSO and SCIM settings. Authenticate with a bearer key: a user "
        "key (pnu_…) or a service-account key (pnb_…). The Prefect API a workspace serves to the "
        "prefect client (/api/accounts/{account}/workspaces/{workspace}/…) is Prefect's own and is "
        "described by Prefect's OpenAPI document."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "PREPROCESSING_HOOKS": ["config.schema.drop_trailing_slash_aliases"],
}

# --- Logging ----------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# json: one JSON object per line with the request id, account and workspace (config.logging);
# plain: one line of text. JSON by default on a server, text for the embedded default.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if EMBEDDED else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured("LOG_FORMAT must be json or plain.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "config.logging.ContextFilter"}},
    "formatters": {
        "plain": {
            "()": "config.logging.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # httpx logs every request's full URL (INFO) and httpcore its headers (DEBUG): outbound webhook
    # URLs and headers carry blocks' secrets, so neither logs below WARNING.
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# --- Observability --------------------------------------------------------------------------------
# Client addresses (CIDRs, by the trusted-proxy rules) that may read /metrics; anyone else gets 404.
# Outbound calls (automation webhooks and notifications) refuse loopback, private, link-local and
# metadata addresses; these CIDRs are allowed all the same (e.g. 127.0.0.1/32 on a laptop).
OUTBOUND_WEBHOOK_ALLOWED_CIDRS = env.list("OUTBOUND_WEBHOOK_ALLOWED_CIDRS", default=[])
for _cidr in OUTBOUND_WEBHOOK_ALLOWED_CIDRS:
    try:
        ipaddress.ip_network(_cidr.strip(), strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"OUTBOUND_WEBHOOK_ALLOWED_CIDRS: {_cidr!r} is not a CIDR.") from None
# The whole of one outbound call, redirects included (a receiver trickling its answer is cut off).
OUTBOUND_WEBHOOK_DEADLINE_SECONDS = env.float("OUTBOUND_WEBHOOK_DEADLINE_SECONDS", default=30.0)
if not OUTBOUND_WEBHOOK_DEADLINE_SECONDS > 0:
    raise ImproperlyConfigured("OUTBOUND_WEBHOOK_DEADLINE_SECONDS must be a positive number of seconds.")
METRICS_ALLOWED_ADDRESSES = env.list("METRICS_ALLOWED_ADDRESSES", default=["127.0.0.1/32", "::1/128"])
# A Celery worker or beat serves /metrics on this port (same address rule); 0: it serves nothing.
METRICS_PORT = env.int("METRICS_PORT", default=0)
if not 0 <= METRICS_PORT <= 65535:
    raise ImproperlyConfigured(f"METRICS_PORT: {METRICS_PORT} is not a port (0 turns it off).")
# How long /readyz waits for the database, Redis and the broker (checked at once) before 503.
READINESS_TIMEOUT_SECONDS = env.float("READINESS_TIMEOUT_SECONDS", default=2.0)

# --- Product --------------------------------------------------------------------------------------
# The plan a new account starts on when none is named.
DEFAULT_PLAN = env.str("DEFAULT_PLAN", default="hobby")
# Rate limits by plan (access.limits) are the plan's figures times this; 0 turns them off. The
# embedded default (one machine, a demo) is ten times as generous.
RATE_LIMIT_SCALE = env.float("RATE_LIMIT_SCALE", default=10.0 if EMBEDDED else 1.0)
# Failed attempts at a door a credential is guessed at (password sign-in, API keys, SCIM tokens,
# invitation acceptance) per client address and window before it answers 429 (accounts.throttles);
# five times as many per account or person; 0 turns the throttles off.
AUTH_THROTTLE_FAILURES = env.int("AUTH_THROTTLE_FAILURES", default=10)
AUTH_THROTTLE_WINDOW_SECONDS = env.int("AUTH_THROTTLE_WINDOW_SECONDS", default=300)
# The Prefect server version this control plane answers for (`admin/version`).
PREFECT_API_COMPAT_VERSION = "3.9.1"

# django-auditlog reads the previous row through the base manager, so workspace-scoped models
# (whose default manager fails closed) can be tracked too.
AUDITLOG_USE_BASE_MANAGER = True

# --- Orchestration services -------------------------------------------------------------------
# The scheduler creates runs ahead: at least MIN_RUNS and runs within MIN_SCHEDULED_HOURS, at most
# MAX_RUNS and nothing beyond MAX_SCHEDULED_DAYS, per schedule (Prefect's defaults).
SCHEDULER_MAX_RUNS = env.int("SCHEDULER_MAX_RUNS", default=100)
SCHEDULER_MIN_RUNS = env.int("SCHEDULER_MIN_RUNS", default=3)
SCHEDULER_MAX_SCHEDULED_DAYS = env.int("SCHEDULER_MAX_SCHEDULED_DAYS", default=100)
SCHEDULER_MIN_SCHEDULED_HOURS = env.int("SCHEDULER_MIN_SCHEDULED_HOURS", default=1)
# A scheduled run this many seconds past its start time is marked Late.
LATE_RUN_AFTER_SECONDS = env.int("LATE_RUN_AFTER_SECONDS", default=15)
# A RUNNING flow run with no heartbeat for this long is marked Crashed.
FLOW_RUN_HEARTBEAT_TIMEOUT_SECONDS = env.int("FLOW_RUN_HEARTBEAT_TIMEOUT_SECONDS", default=600)
# A worker is OFFLINE after missing this many heartbeat intervals.
WORKER_OFFLINE_HEARTBEAT_MULTIPLE = env.int("WORKER_OFFLINE_HEARTBEAT_MULTIPLE", default=3)
# A work queue is READY while a worker polled it within this many seconds, else NOT_READY.
WORK_QUEUE_LAST_POLLED_TIMEOUT_SECONDS = env.int("WORK_QUEUE_LAST_POLLED_TIMEOUT_SECONDS", default=60)
# A CANCELLING run that no worker or runner acknowledges is CANCELLED after this long.
CANCELLING_TIMEOUT_SECONDS = env.int("CANCELLING_TIMEOUT_SECONDS", default=120)
# An automation action (a webhook call, a notification) still running this long after it started
# (its process died during the call) is failed with the reason by the stalled-firing sweep, never
# run again. Longer than any call can take: each request times out within 30 s, a notification may
# make several.
AUTOMATION_ACTION_TIMEOUT_SECONDS = env.int("AUTOMATION_ACTION_TIMEOUT_SECONDS", default=900)
if AUTOMATION_ACTION_TIMEOUT_SECONDS < 60:
    raise ImproperlyConfigured("AUTOMATION_ACTION_TIMEOUT_SECONDS: at least 60 (a call may take that long).")
# Requests one incoming webhook (/hooks/<slug>) accepts per minute; more are answered 429 with
# Retry-After. Counted in the cache: Redis when REDIS_URL is set, else per process.
WEBHOOK_RATE_LIMIT_PER_MINUTE = env.int("WEBHOOK_RATE_LIMIT_PER_MINUTE", default=600)

# --- Billing through Stripe ---------------------------------------------------------------------------
# Stripe is on when STRIPE_SECRET_KEY is set; without it plans are assigned by operators and nothing
# calls Stripe. billing.checks validates these at start.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
# The webhook endpoint's signing secret (whsec_…), and how old a signed delivery may be.
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
# Another Stripe-compatible API server (default: Stripe's own).
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="").rstrip("/")
# Each Stripe request's timeout, and how many times a failed one is retried (same idempotency key).
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=20.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# Prices per self-serve plan, by Stripe id: a flat base price and a per-seat price (either may be
# left out, not both, for a plan offered through Checkout).
STRIPE_PRICE_STARTER = env.str("STRIPE_PRICE_STARTER", default="")
STRIPE_SEAT_PRICE_STARTER = env.str("STRIPE_SEAT_PRICE_STARTER", default="")
STRIPE_PRICE_TEAM = env.str("STRIPE_PRICE_TEAM", default="")
STRIPE_SEAT_PRICE_TEAM = env.str("STRIPE_SEAT_PRICE_TEAM", default="")
# Dunning: days of grace after a failed payment before new work is refused, then days until the
# account is suspended.
BILLING_GRACE_DAYS = env.int("BILLING_GRACE_DAYS", default=7)
BILLING_SUSPEND_AFTER_DAYS = env.int("BILLING_SUSPEND_AFTER_DAYS", default=14)
