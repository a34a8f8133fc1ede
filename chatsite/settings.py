"""Django settings for the chat site, read from the environment with safe defaults.

Nothing is needed to start: SQLite, the in-memory channel layer and the offline demo
provider. Production sets DATABASE_URL, REDIS_URL, DJANGO_SECRET_KEY and friends
(see docs/deploy.md).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import dj_database_url
import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean environment variable ("1", "true", "yes", "on" are true)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    """Read a comma-separated environment variable into a list."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "insecure-dev-key-set-DJANGO_SECRET_KEY-in-production-0123456789"
)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "chat.middleware.AsyncWhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"
WSGI_APPLICATION = None

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
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # One test database per test process, so concurrent runs on one server never collide.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("DJANGO_TEST_DB")
        or f"test_{DATABASES['default']['NAME']}_{os.getpid()}"
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and IMMEDIATE transactions let the request thread and the generation thread
    # write without "database is locked" errors.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:) so threads and server subprocesses share it; one per test
    # process so concurrent runs do not clobber each other.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("DJANGO_TEST_DB")
        or os.path.join(tempfile.gettempdir(), f"chat-test-db-{os.getpid()}.sqlite3")
    }

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 5000, "expiry": 30},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve static files straight from the source folders (no collectstatic) when developing and
# in tests that start a real server; deployments serve the collected files.
WHITENOISE_USE_FINDERS = env_bool("DJANGO_STATIC_FINDERS", DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Content Security Policy, on every response (also in development, so a page that needs an
# inline script fails early): no inline scripts or styles, same-origin everything.
# connect-src 'self' covers same-origin ws:/wss: too (CSP3; checked in Chromium).
SITE_CSP: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
if django.VERSION >= (6, 0):
    SECURE_CSP = SITE_CSP
    MIDDLEWARE.insert(2, "django.middleware.csp.ContentSecurityPolicyMiddleware")
else:  # Django 5.2: the django-csp package
    CONTENT_SECURITY_POLICY = {"DIRECTIVES": SITE_CSP}
    MIDDLEWARE.insert(2, "csp.middleware.CSPMiddleware")

# Production hardening for HTTPS behind a TLS-terminating proxy (docs/deploy.md). Opt-in
# with DJANGO_SECURE=1 (and DEBUG off), so `make run` and the tests keep working on plain
# http://127.0.0.1 with the defaults.
SECURE = env_bool("DJANGO_SECURE", False) and not DEBUG
if SECURE:
    if "DJANGO_SECRET_KEY" not in os.environ:
        raise ImproperlyConfigured("DJANGO_SECURE=1 needs DJANGO_SECRET_KEY to be set.")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # The proxy must set (overwrite) X-Forwarded-Proto; the nginx config in the docs does.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
    # Load balancers probe the health endpoint over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
    # Hashed, compressed static files (run collectstatic at deploy time).
    STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Every API error is {"error": {"type", "message"}} (chat/api/exceptions.py).
    "EXCEPTION_HANDLER": "chat.api.exceptions.api_exception_handler",
    # Generous by default; set API_THROTTLE_RATE (e.g. "120/minute", or "" for none).
    "DEFAULT_THROTTLE_CLASSES": ["chat.api.throttling.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": os.environ.get("API_THROTTLE_RATE", "1200/minute") or None,
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Claude chat API",
    "DESCRIPTION": "Conversations, messages and streaming replies.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request bodies get their own components (read-only fields are not asked for).
    "COMPONENT_SPLIT_REQUEST": True,
    # The streaming endpoints are plain async views: described by a hook.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "chat.api.schema.add_streaming_endpoints",
    ],
}

# The chat app's own settings (defaults in chat/conf.py), overridable here.
# Each is read from the environment variable beside it when that is set.
CHAT_ENVIRONMENT: dict[str, tuple[str, type]] = {
    "PROVIDER": ("CHAT_PROVIDER", str),
    "MODEL": ("CHAT_MODEL", str),
    "MAX_TOKENS": ("CHAT_MAX_TOKENS", int),
    "SYSTEM_PROMPT": ("CHAT_SYSTEM_PROMPT", str),
    "HISTORY_WINDOW": ("CHAT_HISTORY_WINDOW", int),
    "FLUSH_INTERVAL": ("CHAT_FLUSH_INTERVAL", float),
    "ANTHROPIC_API_KEY": ("ANTHROPIC_API_KEY", str),
    "ANTHROPIC_BASE_URL": ("ANTHROPIC_BASE_URL", str),
    "TRANSPORT": ("CHAT_TRANSPORT", str),
    "MAX_MESSAGE_LENGTH": ("CHAT_MAX_MESSAGE_LENGTH", int),
    "MAX_CONCURRENT_PER_USER": ("CHAT_MAX_CONCURRENT_PER_USER", int),
    "DAILY_TOKEN_QUOTA": ("CHAT_DAILY_TOKEN_QUOTA", int),
    "MESSAGES_PER_MINUTE": ("CHAT_MESSAGES_PER_MINUTE", int),
    "LEASE_SECONDS": ("CHAT_LEASE_SECONDS", float),
    "SHUTDOWN_GRACE_SECONDS": ("CHAT_SHUTDOWN_GRACE_SECONDS", float),
    "SSE_PING_SECONDS": ("CHAT_SSE_PING_SECONDS", float),
    "DEMO_WORDS_PER_SECOND": ("CHAT_DEMO_WORDS_PER_SECOND", float),
}
CHAT: dict[str, object] = {
    key: cast(os.environ[name])
    for key, (name, cast) in CHAT_ENVIRONMENT.items()
    if os.environ.get(name)
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # One JSON object per line with the records' extra fields (chat/logging.py).
        "json": {"()": "chat.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if os.environ.get("CHAT_LOG_FORMAT") == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"chat": {"level": os.environ.get("CHAT_LOG_LEVEL", "INFO")}},
}
