"""Settings for nyc-trees: one module, configured only from the environment.

Every variable is documented in `.env.example`. A `.env` file in the project root
(or the file named by ENV_FILE) is read first; real environment variables win over it.
Secrets may instead come from files: set NAME_FILE to a path (Docker secrets live in
/run/secrets/) and NAME is read from that file.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent

# FileAwareEnv: `env("X")` returns the contents of the file named by X_FILE when that is set.
env = environ.FileAwareEnv()
_env_file = Path(env.str("ENV_FILE", default=str(BASE_DIR / ".env")))
if _env_file.is_file():
    environ.Env.read_env(_env_file)


def secret(name: str, default: str | None = None, *, optional: bool = False) -> str | None:
    """Read a secret from NAME or NAME_FILE, stripped of the newline secret files tend to end with.

    A NAME_FILE that cannot be read stops start-up with a message naming the variable and
    the path, but never the secret itself. An empty value is an error, unless the secret is
    `optional` (an empty Docker secret file then means "not set").
    """
    try:
        value = env.str(name, default=None)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{name}_FILE={env.str(f'{name}_FILE')!r} cannot be read: {exc.strerror}"
        ) from None
    if value is None:
        return default
    value = value.strip()
    if not value and optional:
        return default
    if not value:
        raise ImproperlyConfigured(f"{name} is set but empty (check {name} or {name}_FILE)")
    return value


# --- Core -----------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = secret("SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set SECRET_KEY or SECRET_KEY_FILE"
        )
    SECRET_KEY = "insecure-development-key-only-used-when-DEBUG-is-on"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "axes",
    "trees",
]

MIDDLEWARE = [
    # First, so probes are answered whatever the Host header, HTTPS or session state.
    "trees.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before the response cache, so that cached API responses carry these headers too.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "trees.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # CORS headers on every API answer (cached hits and 429s included: it wraps the response
    # cache), and CORS preflights answered here, before the throttle.
    "corsheaders.middleware.CorsMiddleware",
    # API throttling and cached responses: early, so a cached response skips what follows.
    # It also gives every API answer Allow, Content-Length, RateLimit-* and gzip (HEAD: no body).
    "trees.api.caching.ResponseCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# Only the API benchmark changes this (to benchmarks.urls, which adds its reference view).
ROOT_URLCONF = env.str("ROOT_URLCONF", default="config.urls")
WSGI_APPLICATION = "config.wsgi.application"

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

# --- Database -------------------------------------------------------------------------------

# The URL carries no password: it comes from DATABASE_PASSWORD or DATABASE_PASSWORD_FILE,
# so the password is never written into a URL in a compose file or an environment dump.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/nyc_trees")
}
_database_password = secret("DATABASE_PASSWORD")
if _database_password is not None:
    DATABASES["default"]["PASSWORD"] = _database_password
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int(
    "DATABASE_CONNECT_TIMEOUT", default=5
)
# Seconds one statement of a web request may run before Postgres cancels it (0: no limit);
# the web process only (config/wsgi.py, trees/database.py), never the sync or migrations.
DATABASE_STATEMENT_TIMEOUT = env.float("DATABASE_STATEMENT_TIMEOUT", default=5)
# Milliseconds a trees/ page query may run on Postgres's first plan before it is asked again
# with another (trees/plans.py); 0: one plan, however long it takes.
API_PLAN_SWITCH_MS = env.int("API_PLAN_SWITCH_MS", default=20)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------

REDIS_URL = secret("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHE_TTL = env.int("CACHE_TTL", default=24 * 60 * 60)
# Seconds to wait for Redis to accept a connection, and for each answer. Short: Redis is a
# cache on a fast network, and a paused or overloaded one must cost a request little.
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=0.1)
REDIS_TIMEOUT = env.float("REDIS_TIMEOUT", default=0.1)
# After a Redis call fails, the API skips Redis for this many seconds (no throttling, no
# response cache) before trying again: an outage costs one timeout per interval and worker,
# and one warning in the log (trees/breaker.py).
REDIS_BREAKER_SECONDS = env.float("REDIS_BREAKER_SECONDS", default=5)
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="nyc_trees"),
        "TIMEOUT": CACHE_TTL,
        "OPTIONS": {
            # Short timeouts and ignored errors: a Redis outage makes the API slower
            # (it answers from Postgres), never broken. The API's own calls also go
            # through a circuit breaker (trees/breaker.py), which needs their errors.
            "SOCKET_CONNECT_TIMEOUT": REDIS_CONNECT_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_TIMEOUT,
            "IGNORE_EXCEPTIONS": True,
        },
    }
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = "trees.cache"

# --- REST API (trees/api) -------------------------------------------------------------------

# Requests per client address, as "<number>/<second|minute|hour|day>". Counted in Redis in
# fixed windows (trees/api/throttling.py) for everything under /api/; over it, 429.
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="120/minute")
# The same for views with `throttle_scope = "export"` (the bulk exports), counted apart.
API_EXPORT_THROTTLE_RATE = env.str("API_EXPORT_THROTTLE_RATE", default="10/minute")
# The same for the vector tiles (/tiles/), counted apart: a map loads a dozen tiles a view.
API_TILE_THROTTLE_RATE = env.str("API_TILE_THROTTLE_RATE", default="1200/minute")
# How many proxies in front of the app append to X-Forwarded-For. 0 (the default) ignores the
# header and throttles by the connecting address, since clients could otherwise forge it.
API_TRUSTED_PROXIES = env.int("API_TRUSTED_PROXIES", default=0)
# Trees per page when the client does not ask (page_size), and the most it may ask for.
API_PAGE_SIZE = env.int("API_PAGE_SIZE", default=50)
API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", default=1000)
# Largest `radius` (metres) a `near` query may use: bounds the rows one query can touch.
API_MAX_RADIUS = env.int("API_MAX_RADIUS", default=5000)
# Seconds clients and proxies may reuse a response without asking again. 0: they revalidate
# every time (a cheap 304 when nothing changed), so a sync is seen on the very next request.
API_CACHE_MAX_AGE = env.int("API_CACHE_MAX_AGE", default=0)
if API_PAGE_SIZE < 1 or API_MAX_PAGE_SIZE < API_PAGE_SIZE:
    raise ImproperlyConfigured("Need 1 <= API_PAGE_SIZE <= API_MAX_PAGE_SIZE")

REST_FRAMEWORK = {
    # Read-only and anonymous: no authentication, so no response depends on who asks, which is
    # what lets one cached response serve everyone.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PARSER_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["trees.api.filters.KnownParametersFilterBackend"],
    # Throttled before DRF, by trees.api.caching.ResponseCacheMiddleware (API_THROTTLE_RATE).
    "DEFAULT_THROTTLE_CLASSES": [],
    "EXCEPTION_HANDLER": "trees.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # No OPTIONS metadata (it describes writes this API doesn't take): the response cache
    # middleware answers OPTIONS itself, with Allow and no body (the schema documents the API).
    "DEFAULT_METADATA_CLASS": None,
}

# CORS (django-cors-headers) on /api/ and /tiles/ only: reads from any origin by default,
# since the data is public and no request carries credentials (no cookies are sent or
# allowed). A list of origins (`https://a.example,https://b.example`) limits it to those;
# an empty value to none.
_cors_origins = env.list("CORS_ALLOWED_ORIGINS", default=["*"])
CORS_ALLOW_ALL_ORIGINS = "*" in _cors_origins
CORS_ALLOWED_ORIGINS = [origin for origin in _cors_origins if origin and origin != "*"]
CORS_URLS_REGEX = r"^/(api|tiles)/"
CORS_ALLOW_METHODS = ["GET", "HEAD", "OPTIONS"]
CORS_ALLOW_CREDENTIALS = False
# What a page may send (the conditional-request headers, for 304s) and read beyond the
# safelisted headers (the validators, the throttle's, an export's file name).
CORS_ALLOW_HEADERS = ["accept", "if-none-match", "if-modified-since"]
CORS_EXPOSE_HEADERS = [
    "ETag",
    "Last-Modified",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Content-Disposition",
]
# Seconds a browser may reuse a preflight's answer (Chromium caps it at 2 hours).
CORS_PREFLIGHT_MAX_AGE = env.int("CORS_PREFLIGHT_MAX_AGE", default=86400)

SPECTACULAR_SETTINGS = {
    "TITLE": "NYC street trees API",
    "DESCRIPTION": (
        "The 2015 NYC Street Tree Census (683,788 trees), read-only. Lists are paged by cursor: "
        "follow `next`. Responses carry `ETag` and `Last-Modified`; send them back as "
        "`If-None-Match` / `If-Modified-Since` to get a 304 until the data changes. Errors are "
        "JSON with `status`, `detail` and, for bad parameters, `errors` keyed by parameter."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Tags and operation ids from the path after this: the tiles (/tiles/) would otherwise
    # make the common prefix `/` and every tag `api`.
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # The docs page's JavaScript and CSS come from drf-spectacular-sidecar, served by us: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # What generated clients need and drf-spectacular leaves out (see trees/api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "trees.api.schema.postprocess",
    ],
    # One named schema per vocabulary, however many fields use it.
    "ENUM_NAME_OVERRIDES": {
        "BoroughEnum": "trees.models.Borough",
        "TreeStatusEnum": "trees.models.Status",
        "HealthEnum": "trees.models.Health",
        "StewardEnum": "trees.models.Steward",
        "GuardsEnum": "trees.models.Guards",
        "SidewalkEnum": "trees.models.Sidewalk",
        "CurbLocationEnum": "trees.models.CurbLocation",
        "UserTypeEnum": "trees.models.UserType",
        "GeoJSONPointTypeEnum": ["Point"],
        "GeoJSONFeatureTypeEnum": ["Feature"],
        "GeoJSONFeatureCollectionTypeEnum": ["FeatureCollection"],
    },
}

# --- Auth -----------------------------------------------------------------------------------

# django-axes checks every login (the admin's) before Django does, and records failures in
# Postgres: Redis here is an evicting cache, and a lockout that an eviction forgets is none.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# Locked out after this many failed logins in a row for one username from one address, for
# the cool-off period; by username and address together, so that nobody can lock a known
# username out from elsewhere, and one address cannot guess one password forever.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The same client address as the API's throttle: X-Forwarded-For only behind trusted proxies.
AXES_CLIENT_IP_CALLABLE = "trees.api.throttling.client_address"
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins for this username from your address. Try again in "
    f"{AXES_COOLOFF_TIME.total_seconds() / 60:g} minutes."
)
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME.total_seconds() <= 0:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_MINUTES must be positive")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Admin ----------------------------------------------------------------------------------

# Trees and species mirror Socrata, and the next sync overwrites any edit, so the admin shows
# them read-only. True lets staff with the permissions edit them (the change pages then warn).
ADMIN_ALLOW_EDITS = env.bool("ADMIN_ALLOW_EDITS", default=False)

# --- Internationalisation -------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="America/New_York")
USE_I18N = True
USE_TZ = True

# --- The map page (/) ------------------------------------------------------------------------

# No basemap by default: the trees alone, on a plain background (they trace the street grid),
# and no request to any other host. A raster XYZ template such as
# https://tile.example.org/{z}/{x}/{y}.png adds one under the trees, with this attribution;
# the Content-Security-Policy then allows that host (and only it) for images and fetches.
MAP_BASEMAP_URL = env.str("MAP_BASEMAP_URL", default="").strip()
MAP_BASEMAP_ATTRIBUTION = env.str("MAP_BASEMAP_ATTRIBUTION", default="").strip()


def basemap_origins(url: str) -> list[str]:
    """The CSP source for a basemap template's host (`https://tile.example.org`), or none."""
    if not url:
        return []
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or "{" in parts.netloc:
        raise ImproperlyConfigured(
            f"MAP_BASEMAP_URL must be an http(s) URL with a fixed host and {{z}}/{{x}}/{{y}} "
            f"in its path, e.g. https://tile.example.org/{{z}}/{{x}}/{{y}}.png; got {url!r}"
        )
    if not all(f"{{{part}}}" in url for part in "zxy"):
        raise ImproperlyConfigured(f"MAP_BASEMAP_URL needs {{z}}, {{x}} and {{y}}: {url!r}")
    return [f"{parts.scheme}://{parts.netloc}"]


MAP_BASEMAP_ORIGINS = basemap_origins(MAP_BASEMAP_URL)

# --- Static files (whitenoise) --------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security (switch on behind TLS) --------------------------------------------------------

# HTTPS_ONLY=true turns on every TLS-dependent protection at once; each can still be set alone.
HTTPS_ONLY = env.bool("HTTPS_ONLY", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS_ONLY)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # container healthchecks speak plain HTTP
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=HTTPS_ONLY)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=HTTPS_ONLY)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS_ONLY)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS_ONLY)
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    # Only behind a proxy that sets this header itself; otherwise clients could spoof HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Content-Security-Policy on every response: scripts, styles, images and fonts only from this
# site, no plugins, no framing, forms posted only here. The admin and the API docs run their
# scripts from files (no inline script); styles need 'unsafe-inline' for the style attributes
# Swagger UI sets, and `data:` images are its icons. The browser tests (tests/browser) fail on
# any violation in the pages they visit.
# The map page's optional basemap host (MAP_BASEMAP_URL, below) is the only other origin: images
# and fetches may reach it, and nothing else.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:", *MAP_BASEMAP_ORIGINS],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF, *MAP_BASEMAP_ORIGINS],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# Request size. Nothing here takes uploads: the API is read-only (a POST is a 405 before its
# body is read) and the admin's forms are small. Django answers 400 past these; gunicorn bounds
# the request line and headers (config/gunicorn.py). The field count applies to query strings
# too, so a URL with thousands of parameters is a 400 before any view runs.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# --- Socrata --------------------------------------------------------------------------------

SOCRATA_URL = env.str("SOCRATA_URL", default="https://data.cityofnewyork.us").rstrip("/")
SOCRATA_DATASET = env.str("SOCRATA_DATASET", default="uvpi-gqnh")
SOCRATA_APP_TOKEN = secret("SOCRATA_APP_TOKEN", optional=True)
SOCRATA_CONNECT_TIMEOUT = env.float("SOCRATA_CONNECT_TIMEOUT", default=10)
SOCRATA_READ_TIMEOUT = env.float("SOCRATA_READ_TIMEOUT", default=120)
SOCRATA_MAX_ATTEMPTS = env.int("SOCRATA_MAX_ATTEMPTS", default=6)
# A full run that would delete more than this share of the trees fails instead (a broken or
# half-published source looks like mass deletion); `sync_trees --allow-mass-delete` overrides.
SYNC_MAX_DELETE_FRACTION = env.float("SYNC_MAX_DELETE_FRACTION", default=0.1)

# --- Logging: everything to stdout, for containers and process managers ---------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "config.logging.UTCFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        # django-axes greets every process start at INFO; its lockouts are warnings.
        "axes.apps": {"level": "WARNING"},
    },
}
