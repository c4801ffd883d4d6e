"""preflab settings: one env-driven module (django-environ).

Every production switch is an environment variable; the defaults are the embedded quickstart:
SQLite under var/, Celery over kombu's filesystem transport (no server needed), DEBUG on.
"""
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("PREFLAB_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
env.read_env(env.str("PREFLAB_ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-key-change-me-" + "x" * 30)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "csp",
    "annotation",
    "generation",
    "judging",
]

MIDDLEWARE = [
    # /healthz answers before host validation and the HTTPS redirect (container health checks).
    "preflab.health.HealthCheckMiddleware",
    # Bodies declared over PREFLAB_MAX_UPLOAD_BYTES are refused (413) before any view reads them.
    "preflab.security.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy (CONTENT_SECURITY_POLICY below) and Permissions-Policy (PERMISSIONS_POLICY) on
    # every response, static files included.
    "preflab.security.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's session and message middlewares, the store and storage made on first use (an API call by token uses neither)
    "preflab.lazy_middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # A query parameter holding NUL answers 400 naming it (annotation.text) before a view queries with it.
    "preflab.security.QueryTextMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "preflab.lazy_middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Failed logins are counted per username+client IP; too many lock that pair out for a while.
    "preflab.security.LoginThrottleMiddleware",
    # A lost database connection answers 503 with a message instead of a bare 500.
    "preflab.health.DatabaseUnavailableMiddleware",
    # A job stored while the task broker was down: the page says so and opens the job (resume sends it).
    "preflab.health.JobNotQueuedMiddleware",
]

ROOT_URLCONF = "preflab.urls"
WSGI_APPLICATION = "preflab.wsgi.application"
ASGI_APPLICATION = "preflab.asgi.application"

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
        },
    }
]

# Several test runs may share one machine (and one PostgreSQL): PREFLAB_TEST_DB keeps them apart.
_TEST_DB = env.str("PREFLAB_TEST_DB", default="default")
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'preflab.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so concurrent writers queue instead of
    # failing with "database is locked" half-way through a transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20,
         "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(VAR_DIR / f"test_{_TEST_DB}.sqlite3")
else:
    DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_preflab_{_TEST_DB}"
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend with a health check that asks the socket, not the server (no round trip
        # per request), and a server-binding cursor for the annotation hot path's raw statements:
        # see preflab/pgbackend/base.py.
        DATABASES["default"]["ENGINE"] = "preflab.pgbackend"
        # psycopg prepares a statement once it ran this many times on a connection (Django turns this
        # off by default for poolers). Only the hot path's server-binding cursor is ever prepared: the
        # ORM binds on the client. 0: never (behind a pooler in transaction mode without
        # prepared-statement support).
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
            "prepare_threshold", env.int("PREFLAB_DB_PREPARE_THRESHOLD", default=5) or None)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles"))
try:  # whitenoise warns on every request when the folder is missing
    Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
except OSError:
    pass
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "STATICFILES_STORAGE", default="django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))

# --- uploads and payload limits ---------------------------------------------------------------
PREFLAB_MAX_RECORD_BYTES = env.int("PREFLAB_MAX_RECORD_BYTES", default=1_000_000)
# Deleting a dataset from its page: up to this many records inside the request, more as a job
PREFLAB_DELETE_IN_REQUEST_MAX = env.int("PREFLAB_DELETE_IN_REQUEST_MAX", default=100_000)
PREFLAB_MAX_UPLOAD_BYTES = env.int("PREFLAB_MAX_UPLOAD_BYTES", default=10 * 1024**3)
PREFLAB_LEASE_SECONDS = env.int("PREFLAB_LEASE_SECONDS", default=30 * 60)
PREFLAB_IMPORT_BATCH = env.int("PREFLAB_IMPORT_BATCH", default=2000)
# Writer threads (each with its own connection) of a pipelined import on PostgreSQL: batches are
# loaded by that many backends at once and still commit one after the other, in order
PREFLAB_IMPORT_WRITERS = env.int("PREFLAB_IMPORT_WRITERS", default=2)
# Decompressed size of one AlpacaEval annotation upload to the evaluation API (judging.evaluation.uploads);
# those endpoints read their body in chunks, so DATA_UPLOAD_MAX_MEMORY_SIZE does not apply to them.
PREFLAB_EVAL_UPLOAD_MAX_BYTES = env.int("PREFLAB_EVAL_UPLOAD_MAX_BYTES", default=512 * 1024**2)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=20 * 1024**2)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024**2

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer",
                                 "rest_framework.renderers.BrowsableAPIRenderer"],
    "EXCEPTION_HANDLER": "annotation.api_common.exception_handler",
    # DRF's, with the usual Accept headers answered without parsing them
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "annotation.api_negotiation.ContentNegotiation",
    # bodies holding text that cannot be stored (NUL, lone surrogates) are a 400 naming the field
    "DEFAULT_PARSER_CLASSES": ["annotation.api_parsers.JSONParser", "annotation.api_parsers.FormParser",
                               "annotation.api_parsers.MultiPartParser"],
    # views with throttle_scope = "login" (token endpoints) are rate limited per username+IP
    "DEFAULT_THROTTLE_CLASSES": ["preflab.security.LoginRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"login": env.str("LOGIN_THROTTLE_RATE", default="10/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "preflab API",
    "DESCRIPTION": "Preference data for LLM alignment: datasets, records, responses, suggestions, "
                   "triplet export, generation and judge jobs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come from drf-spectacular-sidecar (static files of this app, pinned by its version),
    # so /api/docs/ works without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # no validator badge: Swagger UI would load it from swagger.io, which the CSP (img-src 'self') refuses
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # every operation declares its 400/401/403/404 answers, with the bodies of the API's exception handler
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "annotation.api_common.error_responses_hook"],
    # distinct names for choice sets used by several serializers (several models have a `status` /
    # `kind`); keeps `check --deploy` free of schema warnings
    "ENUM_NAME_OVERRIDES": {
        "DatasetStatusEnum": "annotation.models.Dataset.Status",
        "ResponseStatusEnum": "annotation.models.Response.Status",
        "JobStatusEnum": "annotation.models.Job.Status",
        "FieldKindEnum": "annotation.models.Field.Kind",
        "QuestionKindEnum": "annotation.models.Question.Kind",
        "MembershipRoleEnum": "annotation.models.Membership.Role",
        "EndpointBackendEnum": "generation.models.Endpoint.Backend",
        "JudgeMethodEnum": "judging.models.Judge.Method",
        "JudgeAspectEnum": "judging.models.Judge.Aspect",
        "JudgeOverallModeEnum": "judging.models.Judge.OverallMode",
    },
}

# --- Celery -----------------------------------------------------------------------------------
# The module defining the Celery app, loaded by annotation.tasks before a task is bound or sent (not at
# Django's start: preflab/__init__.py).
PREFLAB_CELERY_APP = "preflab.celery"
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery-queue"
    (_queue_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith("redis"):
    # Long LLM jobs: a task not acknowledged within this time is handed to another worker.
    # Redelivery of a killed worker's chunk: after visibility_timeout, found by a sweep that runs
    # every interval*throttle seconds (kombu's default is ~100 s).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
        "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=10),
        "unacked_restore_throttle": env.int("CELERY_UNACKED_RESTORE_THROTTLE", default=3),
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env.str("PREFLAB_CPU_QUEUE", default="preflab")
PREFLAB_CPU_QUEUE = CELERY_TASK_DEFAULT_QUEUE
PREFLAB_GPU_QUEUE = env.str("PREFLAB_GPU_QUEUE", default="gpu")
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=3300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3600)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Job liveness (annotation.jobs, README "Jobs and workers"): a running chunk refreshes its heartbeat
# every PREFLAB_JOB_HEARTBEAT_SECONDS; every worker sweeps every PREFLAB_JOB_SWEEP_SECONDS (0: this
# worker does not sweep) and re-queues a running chunk silent for PREFLAB_JOB_STALL_SECONDS, at most
# PREFLAB_JOB_MAX_REQUEUES times (then the job fails with the reason, resumable).
PREFLAB_JOB_HEARTBEAT_SECONDS = env.float("PREFLAB_JOB_HEARTBEAT_SECONDS", default=10.0)
PREFLAB_JOB_STALL_SECONDS = env.float("PREFLAB_JOB_STALL_SECONDS", default=90.0)
PREFLAB_JOB_SWEEP_SECONDS = env.float("PREFLAB_JOB_SWEEP_SECONDS", default=30.0)
PREFLAB_JOB_MAX_REQUEUES = env.int("PREFLAB_JOB_MAX_REQUEUES", default=3)

# --- production switches (all from the environment) ------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_PROXY", default=False) else None
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
    "loggers": {
        # the LLM clients log every request at INFO: keep that off the hot path
        "httpx": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
    },
}

# --- production hardening: every switch comes from the environment -----------------
# The built-in development key must never serve real traffic: with DEBUG off, refuse to start
# unless SECRET_KEY comes from the environment and looks like a real key.
_INSECURE_KEY_MARKERS = ("insecure", "change-me", "changeme")
if not DEBUG and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5
                  or any(marker in SECRET_KEY.lower() for marker in _INSECURE_KEY_MARKERS)):
    raise ImproperlyConfigured(
        "DEBUG is false but SECRET_KEY is the development default or too weak: set SECRET_KEY in the "
        "environment to a random string of at least 50 characters (python -c \"import secrets; "
        "print(secrets.token_urlsafe(64))\").")

# Shared cache (login throttling counters must be shared by every gunicorn worker and machine):
# CACHE_URL=redis://redis:6379/1 in production, process-local memory by default.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

AUTHENTICATION_BACKENDS = ["preflab.security.ThrottledModelBackend"]
LOGIN_THROTTLE_FAILURES = env.int("LOGIN_THROTTLE_FAILURES", default=5)
LOGIN_THROTTLE_WINDOW = env.int("LOGIN_THROTTLE_WINDOW", default=15 * 60)

SESSION_COOKIE_SAMESITE = "Lax"
# Sessions read from the cache first (one query less per request), written through to the DB.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Content-Security-Policy and Permissions-Policy (every response) ---------------------------
# Scripts only from this app's own static files: no inline <script>, no on* attributes, no eval (htmx runs with
# allowEval false, set in base.html's htmx-config; Swagger UI's init script is a separate file). Style sheets only
# from 'self' (no <style> blocks); style="" attributes stay allowed (style-src-attr): the templates size progress
# bars with them and Swagger UI and the Django admin write a few. JSON data for scripts goes in
# <script type="application/json"> or data-* attributes, which are never executed.
_SELF, _NONE = "'self'", "'none'"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [_SELF],
        "script-src": [_SELF],
        "style-src": [_SELF],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": [_SELF, "data:"],
        "font-src": [_SELF, "data:"],
        "connect-src": [_SELF],
        "object-src": [_NONE],
        "base-uri": [_SELF],
        "form-action": [_SELF],
        "frame-ancestors": [_NONE],
    },
}
# Browser features the app never uses are switched off for it and for anything it could ever embed.
PERMISSIONS_POLICY = {feature: [] for feature in (
    "accelerometer", "autoplay", "camera", "display-capture", "encrypted-media", "fullscreen", "geolocation",
    "gyroscope", "hid", "magnetometer", "microphone", "midi", "payment", "picture-in-picture",
    "publickey-credentials-get", "screen-wake-lock", "serial", "usb", "xr-spatial-tracking")}
