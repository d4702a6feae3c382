"""Settings: defaults, then the environment, then the caller's overrides; checked before use.

Everything is read inside `load_config`, called by the factory, never at import time.
"""

import math
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask
from limits import parse_many

# The languages with a catalogue in translations/ (adding one: README, "Languages").
LANGUAGES = ("en", "ru")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

DEFAULTS = {
    "APP_ENV": "development",
    "SECRET_KEY": None,
    "DATABASE_URL": None,  # None: SQLite file in instance/
    "REDIS_URL": None,  # None: in-process cache and rate-limit counters
    "PUBLIC_URL": None,  # e.g. https://refer.example.com; None: taken from the request
    "TRUSTED_PROXY_COUNT": 0,
    "EMAIL_CHECK_DNS": False,
    # None: INFO, with one-line-per-message loggers at WARNING in development (core/logs.py).
    "LOG_LEVEL": None,
    "SQLITE_BUSY_TIMEOUT_SECONDS": 15,
    "LEADERBOARD_CACHE_SECONDS": 60,
    "LEADERBOARD_PAGE_SIZE": 20,
    "DASHBOARD_PAGE_SIZE": 20,
    "RATELIMIT_ENABLED": True,
    "LOGIN_LIMITS": "20/minute;200/hour",  # per client IP
    "LOGIN_ACCOUNT_LIMITS": "5/minute;30/hour",  # per account and client IP
    # Wrong passwords per account from all addresses; each longer run waits longer. Any rolling
    # hour allows at most 100 (ASVS 2.2.1); _check refuses rules that would allow more.
    "LOGIN_FAILURE_LIMITS": "10/minute;20/15 minutes;50/hour",
    "SIGNUP_LIMITS": "10/minute;100/hour",  # per client IP
    "REFERRAL_LINK_LIMITS": "60/minute;1000/hour",  # per client IP on /r/<code>
    "CLAIM_LIMITS": "10/minute;50/day",  # inviter claims tried, per client IP
    # Development only: false stops the checks that compare signup IP addresses from holding
    # a referral, so two browsers on one machine can try a referral. Production refuses it.
    "FRAUD_SAME_IP_REVIEW": True,
    # Invitations by email sent, per sender (each up to 5 addresses; a refused form is free).
    "INVITATION_LIMITS": "5/hour;10/day",
    # Werkzeug hash method. Only a test configuration may lower it; see _check.
    "PASSWORD_HASH_METHOD": "scrypt",
    # Rewards and conversions.
    "DEFAULT_CURRENCY": "USD",
    "PAYOUT_MINIMUM": 2000,  # minor units of the payout's currency
    "REVIEW_DAYS": 3,  # how long staff take to decide a held referral, as participants are told
    "EVENTS_WEBHOOK_SECRET": None,  # whsec_... ; a comma-separated list while rotating
    "STRIPE_WEBHOOK_SECRET": None,  # whsec_... from the Stripe dashboard
    "SALEOR_API_URL": None,  # e.g. https://shop.example.com/graphql/ ; its JWKS signs webhooks
    "SALEOR_WEBHOOK_SECRET": None,  # legacy HMAC signatures, only when set
    "SALEOR_JWKS_CACHE_SECONDS": 3600,
    # Other Saleor API URLs (comma-separated) that may install the app besides SALEOR_API_URL.
    "SALEOR_ALLOWED_API_URLS": None,
    # Encrypts the Saleor app token at rest; None: a key derived from SECRET_KEY.
    "SALEOR_TOKEN_KEY": None,
    "SALEOR_TIMEOUT_SECONDS": 10,  # one GraphQL call to Saleor, all of it
    "SALEOR_REGISTER_LIMITS": "10/minute;50/day",  # per client IP on /saleor/register
    # The channel coupon rewards are Saleor vouchers in (its ID); None: coupons stay InviteLoop's.
    "SALEOR_CHANNEL_ID": None,
    "WEBHOOK_TOLERANCE_SECONDS": 300,
    "EVENTS_LIMITS": "600/minute",  # per client IP on the webhook endpoints
    # Background jobs: inline unless a Redis broker is configured.
    "CELERY_ALWAYS_EAGER": None,  # None: eager exactly when REDIS_URL is unset
    "REWARDS_SWEEP_SECONDS": 300,  # how often workers release holds and expire rewards
    # Email: printed to the console unless an SMTP server is configured.
    "MAIL_BACKEND": "console",
    "MAIL_SERVER": "localhost",
    "MAIL_PORT": 25,
    "MAIL_USE_TLS": False,
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,
    "MAIL_DEFAULT_SENDER": "InviteLoop <no-reply@localhost>",
    "MAIL_FILE_PATH": None,  # the "file" backend's folder
    "MAIL_TIMEOUT": 10,  # seconds; a silent SMTP server must not hang a worker
    "CELERY_DEFAULT_QUEUE": "inviteloop",  # distinct names let installations share a Redis
    # Staff panel.
    "CONTRACTS_FOLDER": None,  # None: instance/contracts (never under static/)
    "CONTRACT_MAX_BYTES": 10 * 1024 * 1024,
    "ANALYTICS_CACHE_SECONDS": 60,
    "ADMIN_PAGE_SIZE": 50,
    # The outbox (core/outbox.py): emails, texts and webhook attempts waiting to leave.
    "OUTBOX_DELIVERY": None,  # None: "celery" with a broker, else "thread"; "inline": tests only
    "OUTBOX_MAX_ATTEMPTS": 20,  # waits 5 s doubling up to 30 min: about 7 hours, then dead
    "OUTBOX_LEASE_SECONDS": 120,  # a sender's hold on a row; past it another takes over
    "OUTBOX_POLL_SECONDS": 5,  # the in-process sender looks for due retries this often
    "OUTBOX_SWEEP_SECONDS": 60,  # beat's sweep of due rows whose hint was lost
    # With Redis, clicks are queued there and moved to the database by the worker this often
    # (seconds), claiming those a crashed mover left behind after CLICK_CLAIM_SECONDS.
    "CLICK_MOVE_SECONDS": 1,
    "CLICK_CLAIM_SECONDS": 30,
    # Without Redis, on a SQLite file: clicks are acknowledged once in a journal beside it and
    # moved to the database every CLICK_MOVE_SECONDS (referral/clicks.py's ClickJournal).
    "CLICK_JOURNAL": True,
    "OUTBOX_BACKLOG_SECONDS": 300,  # /health: degraded when a due row has waited longer
    "OUTBOX_KEEP_SENT_DAYS": 30,  # sent messages are deleted after this many days (daily)
    # Outbound webhooks.
    "WEBHOOK_DELIVERY_TIMEOUT_SECONDS": 10,
    "WEBHOOK_MAX_ATTEMPTS": 8,  # retried with exponential backoff, then marked failed
    "WEBHOOK_ALLOW_PRIVATE_URLS": False,  # True only for local testing: SSRF protection
    # Phone sign-in: one-time codes sent by SMS.
    "SMS_BACKEND": "console",  # console (logs number and code) | http (a provider's API)
    "SMS_HTTP_URL": None,  # the http backend POSTs {"to", "body"} as JSON here
    "SMS_HTTP_TOKEN": None,  # sent as "Authorization: Bearer <token>" when set
    "SMS_HTTP_TIMEOUT_SECONDS": 10,
    "PHONE_DEFAULT_REGION": "US",  # how numbers typed without a +country code are read
    "PHONE_CODE_IP_LIMITS": "5/minute;30/hour",  # codes sent, per client IP
    "PHONE_CODE_NUMBER_LIMITS": "1/minute;5/hour",  # codes sent, per phone number
    "PHONE_VERIFY_LIMITS": "20/minute;100/hour",  # code entries, per client IP
    # Password reset.
    "PASSWORD_RESET_IP_LIMITS": "5/minute;30/hour",  # reset requests, per client IP
    "PASSWORD_RESET_EMAIL_LIMITS": "3/hour;10/day",  # reset requests, per email address
    # Dependencies and hosts (issue 12, rows 1 and 2).
    # Host names a request may name (comma-separated; ".example.com" covers its subdomains,
    # "*" any). None: localhost names in development (plus PUBLIC_URL's host); any in
    # production, where every absolute link comes from PUBLIC_URL (required there).
    "ALLOWED_HOSTS": None,
    "REDIS_TIMEOUT_SECONDS": 2,  # connect and read timeout of the cache and rate-limit storage
    "HEALTH_PROBE_TIMEOUT_SECONDS": 1,  # each dependency /health probes (Redis, broker, SMTP)
    # /metrics (core/metrics.py): with a token, only `Authorization: Bearer <token>`; without
    # one, open in development and 404 in production.
    "METRICS_TOKEN": None,
    # A folder where compiled templates are kept and shared by every process of the machine
    # (Jinja's bytecode cache); None: each process compiles the templates it renders.
    "TEMPLATE_CACHE_DIR": None,
    "DEFAULT_LOCALE": "en",  # the language of a visitor who asks for none we have (core/i18n.py)
    "LOG_FORMAT": "text",  # or json: one JSON object per line (core/logs.py)
    # Shop origins (comma-separated, e.g. https://shop.example.com) that may frame the widget
    # and record snippet clicks (referral/embed.py). None: no shop may.
    "EMBED_ALLOWED_ORIGINS": None,
    # Origins of a Saleor dashboard hosted apart from SALEOR_API_URL's, allowed to frame the
    # app's page; SALEOR_API_URL's own origin always is.
    "SALEOR_DASHBOARD_ORIGINS": None,
}

# ASVS 2.2.1: no more wrong passwords than this for one account in any hour.
MAX_LOGIN_FAILURES_PER_HOUR = 100

# How each environment variable is parsed; anything unparseable stops the start-up.
_ENV_TYPES = {
    "APP_ENV": str,
    "DEFAULT_LOCALE": str,
    "SECRET_KEY": str,
    "DATABASE_URL": str,
    "REDIS_URL": str,
    "PUBLIC_URL": str,
    "EMBED_ALLOWED_ORIGINS": str,
    "SALEOR_DASHBOARD_ORIGINS": str,
    "TRUSTED_PROXY_COUNT": int,
    "EMAIL_CHECK_DNS": bool,
    "LOG_LEVEL": str,
    "FRAUD_SAME_IP_REVIEW": bool,
    "SQLITE_BUSY_TIMEOUT_SECONDS": int,
    "LEADERBOARD_CACHE_SECONDS": int,
    "RATELIMIT_ENABLED": bool,
    "LOGIN_LIMITS": str,
    "LOGIN_ACCOUNT_LIMITS": str,
    "LOGIN_FAILURE_LIMITS": str,
    "SIGNUP_LIMITS": str,
    "REFERRAL_LINK_LIMITS": str,
    "CLAIM_LIMITS": str,
    "INVITATION_LIMITS": str,
    "DEFAULT_CURRENCY": str,
    "PAYOUT_MINIMUM": int,
    "REVIEW_DAYS": int,
    "EVENTS_WEBHOOK_SECRET": str,
    "STRIPE_WEBHOOK_SECRET": str,
    "SALEOR_API_URL": str,
    "SALEOR_WEBHOOK_SECRET": str,
    "SALEOR_JWKS_CACHE_SECONDS": int,
    "SALEOR_ALLOWED_API_URLS": str,
    "SALEOR_TOKEN_KEY": str,
    "SALEOR_TIMEOUT_SECONDS": int,
    "SALEOR_REGISTER_LIMITS": str,
    "SALEOR_CHANNEL_ID": str,
    "EVENTS_LIMITS": str,
    "CELERY_ALWAYS_EAGER": bool,
    "REWARDS_SWEEP_SECONDS": int,
    "MAIL_BACKEND": str,
    "MAIL_SERVER": str,
    "MAIL_PORT": int,
    "MAIL_USE_TLS": bool,
    "MAIL_USERNAME": str,
    "MAIL_PASSWORD": str,
    "MAIL_DEFAULT_SENDER": str,
    "MAIL_FILE_PATH": str,
    "MAIL_TIMEOUT": int,
    "CELERY_DEFAULT_QUEUE": str,
    "CONTRACTS_FOLDER": str,
    "CONTRACT_MAX_BYTES": int,
    "ANALYTICS_CACHE_SECONDS": int,
    "ADMIN_PAGE_SIZE": int,
    "OUTBOX_DELIVERY": str,
    "OUTBOX_MAX_ATTEMPTS": int,
    "OUTBOX_LEASE_SECONDS": int,
    "OUTBOX_POLL_SECONDS": int,
    "OUTBOX_SWEEP_SECONDS": int,
    "CLICK_MOVE_SECONDS": int,
    "CLICK_CLAIM_SECONDS": int,
    "CLICK_JOURNAL": bool,
    "OUTBOX_BACKLOG_SECONDS": int,
    "OUTBOX_KEEP_SENT_DAYS": int,
    "WEBHOOK_DELIVERY_TIMEOUT_SECONDS": int,
    "WEBHOOK_MAX_ATTEMPTS": int,
    "WEBHOOK_ALLOW_PRIVATE_URLS": bool,
    "SMS_BACKEND": str,
    "SMS_HTTP_URL": str,
    "SMS_HTTP_TOKEN": str,
    "SMS_HTTP_TIMEOUT_SECONDS": int,
    "PHONE_DEFAULT_REGION": str,
    "PHONE_CODE_IP_LIMITS": str,
    "PHONE_CODE_NUMBER_LIMITS": str,
    "PHONE_VERIFY_LIMITS": str,
    "PASSWORD_RESET_IP_LIMITS": str,
    "PASSWORD_RESET_EMAIL_LIMITS": str,
    "ALLOWED_HOSTS": str,
    "REDIS_TIMEOUT_SECONDS": int,
    "HEALTH_PROBE_TIMEOUT_SECONDS": int,
    "METRICS_TOKEN": str,
    "TEMPLATE_CACHE_DIR": str,
    "LOG_FORMAT": str,
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the app refuses to start."""


def load_config(app: Flask, overrides: dict | None) -> None:
    app.config.update(DEFAULTS)
    app.config.update(_from_environment(os.environ))
    app.config.update(overrides or {})
    _derive(app)
    _check(app)


def _from_environment(environ) -> dict:
    values = {}
    for name, kind in _ENV_TYPES.items():
        raw = environ.get(name)
        if raw is None or (raw == "" and kind is not bool):
            continue
        values[name] = _parse(name, raw, kind)
    return values


def _parse(name: str, raw: str, kind):
    if kind is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false, not {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    return raw


def _derive(app: Flask) -> None:
    config = app.config
    production = config["APP_ENV"] == "production"
    if not config["SECRET_KEY"] and not production:
        config["SECRET_KEY"] = _development_secret(Path(app.instance_path))
    config["SQLALCHEMY_DATABASE_URI"] = database_uri(config["DATABASE_URL"], app.instance_path)
    config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(config)
    redis_url = config["REDIS_URL"]
    config.setdefault("CACHE_KEY_PREFIX", "inviteloop:")
    if redis_url:
        # Redis down: the cache and the rate limiter both carry on in process memory (back
        # on Redis once it answers again); neither turns a page into a 500.
        redis_timeouts = {
            "socket_connect_timeout": config["REDIS_TIMEOUT_SECONDS"],
            "socket_timeout": config["REDIS_TIMEOUT_SECONDS"],
        }
        config.setdefault("CACHE_TYPE", "core.caching.FailSoftRedisCache")
        config.setdefault("CACHE_REDIS_URL", redis_url)
        if config["CACHE_TYPE"].endswith("RedisCache"):  # not a test's own SimpleCache
            config.setdefault("CACHE_OPTIONS", redis_timeouts)
        config.setdefault("RATELIMIT_STORAGE_URI", redis_url)
        config.setdefault("RATELIMIT_STORAGE_OPTIONS", redis_timeouts)
    else:
        config.setdefault("CACHE_TYPE", "SimpleCache")
        config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    config.setdefault("RATELIMIT_KEY_PREFIX", "inviteloop")
    config["ALLOWED_HOSTS_LIST"] = allowed_hosts(config)
    config["EMBED_ORIGINS"] = embed_origins(config["EMBED_ALLOWED_ORIGINS"])
    config["SALEOR_DASHBOARD_FRAME_ORIGINS"] = saleor_dashboard_origins(config)
    config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["REMEMBER_COOKIE_HTTPONLY"] = True
    config["REMEMBER_COOKIE_SAMESITE"] = "Lax"
    # Flask and Flask-Login default these to False; production always sends them Secure.
    config["SESSION_COOKIE_SECURE"] = config.get("SESSION_COOKIE_SECURE") or production
    config["REMEMBER_COOKIE_SECURE"] = config.get("REMEMBER_COOKIE_SECURE") or production
    config["BOOTSTRAP_SERVE_LOCAL"] = True
    config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
    config["MAX_CONTENT_LENGTH"] = config.get("MAX_CONTENT_LENGTH") or 1024 * 1024
    config["DEFAULT_CURRENCY"] = config["DEFAULT_CURRENCY"].upper()
    config["LOG_LEVEL"] = config["LOG_LEVEL"].upper() if config["LOG_LEVEL"] else None
    config["CONTRACTS_FOLDER"] = config["CONTRACTS_FOLDER"] or os.path.join(
        app.instance_path, "contracts"
    )
    eager = config["CELERY_ALWAYS_EAGER"]
    eager = (not redis_url) if eager is None else eager
    if not config["OUTBOX_DELIVERY"]:
        config["OUTBOX_DELIVERY"] = "thread" if eager else "celery"
    config["CELERY"] = {
        "broker_url": redis_url or "memory://localhost/",
        "task_default_queue": config["CELERY_DEFAULT_QUEUE"],
        "result_backend": None,
        "task_always_eager": eager,
        "task_eager_propagates": True,
        "task_ignore_result": True,
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "beat_schedule": {
            "release-held-rewards": {
                "task": "rewards.release_held",
                "schedule": config["REWARDS_SWEEP_SECONDS"],
            },
            "expire-rewards": {
                "task": "rewards.expire",
                "schedule": config["REWARDS_SWEEP_SECONDS"],
            },
            "move-clicks": {
                "task": "referral.move_clicks",
                "schedule": config["CLICK_MOVE_SECONDS"],
            },
            # Events acknowledged with 202 whose run was not asked for or was lost.
            "process-events": {"task": "events.process_queued", "schedule": 5},
            "outbox-sweep": {
                "task": "outbox.sweep",
                "schedule": config["OUTBOX_SWEEP_SECONDS"],
            },
            "retry-webhooks": {
                "task": "rewards.retry_webhooks",
                "schedule": config["REWARDS_SWEEP_SECONDS"],
            },
            # Every 10 minutes: a stale day is counted from the rows until the job recounts it.
            "rollup-analytics": {"task": "admin.rollup_analytics", "schedule": 600},
            "prune-sessions": {"task": "auth.prune_sessions", "schedule": 86400},  # daily
            "prune-outbox": {"task": "outbox.prune", "schedule": 86400},  # daily
            "queue-saleor-rewards": {
                "task": "saleor.queue_rewards",
                "schedule": config["REWARDS_SWEEP_SECONDS"],
            },
            # Gift cards spent and vouchers used: Saleor sends no webhook for either.
            "reconcile-saleor-usage": {"task": "saleor.reconcile_usage", "schedule": 3600},
            # Orders whose webhooks Saleor gave up on (it retries for a few minutes only).
            "reconcile-saleor-orders": {"task": "saleor.reconcile_orders", "schedule": 900},
        },
        **config.get("CELERY_OVERRIDES", {}),
    }


def embed_origins(raw: str | None, setting: str = "EMBED_ALLOWED_ORIGINS") -> tuple[str, ...]:
    """The origins a comma-separated `setting` lists, each exactly "scheme://host[:port]" as a
    browser sends it in an Origin header; anything else stops the start-up."""
    origins = []
    for entry in (raw or "").split(","):
        entry = entry.strip().rstrip("/")
        if not entry:
            continue
        parts = urlsplit(entry)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
            raise ConfigError(
                f"{setting}: {entry!r} is not an origin like https://shop.example.com"
            )
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def saleor_dashboard_origins(config) -> tuple[str, ...]:
    """Who may frame the app's page (/saleor/app): the origin of SALEOR_API_URL, where Saleor
    Cloud serves its dashboard too, and any SALEOR_DASHBOARD_ORIGINS (a dashboard hosted
    elsewhere)."""
    origins = list(embed_origins(config["SALEOR_DASHBOARD_ORIGINS"], "SALEOR_DASHBOARD_ORIGINS"))
    parts = urlsplit(config["SALEOR_API_URL"] or "")
    if parts.scheme in ("http", "https") and parts.hostname:
        api_origin = f"{parts.scheme}://{parts.netloc.lower()}"
        if api_origin not in origins:
            origins.insert(0, api_origin)
    return tuple(origins)


def allowed_hosts(config) -> list[str] | None:
    """The host names a request may carry; None when any will do (production's default)."""
    raw = config["ALLOWED_HOSTS"]
    if raw is None:
        if config["APP_ENV"] == "production":
            return None
        names = ["localhost", "127.0.0.1", "[::1]"]
        if config["PUBLIC_URL"]:
            names.append(urlsplit(config["PUBLIC_URL"]).hostname or "")
    else:
        names = [name.strip() for name in raw.split(",")] if isinstance(raw, str) else list(raw)
    # Compared without brackets or a trailing dot: "[::1]" is ::1, "localhost." is localhost.
    names = [name.lower().strip("[]").rstrip(".") for name in names if name.strip("[]")]
    return None if "*" in names else names


def database_uri(url: str | None, instance_path: str) -> str:
    """The SQLAlchemy URL; PostgreSQL URLs are pointed at the psycopg 3 driver."""
    if not url:
        Path(instance_path).mkdir(parents=True, exist_ok=True)
        return "sqlite:///" + str(Path(instance_path) / "inviteloop.db")
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _engine_options(config) -> dict:
    if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return {"connect_args": {"timeout": config["SQLITE_BUSY_TIMEOUT_SECONDS"]}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


def _development_secret(instance: Path) -> str:
    """A random key kept in instance/ so development sessions survive restarts."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _check(app: Flask) -> None:
    config = app.config
    if config["APP_ENV"] not in ("development", "production"):
        raise ConfigError("APP_ENV must be 'development' or 'production'")
    if config["APP_ENV"] == "production":
        key = config["SECRET_KEY"] or ""
        if len(key) < 32:
            raise ConfigError(
                "SECRET_KEY must be set to a random value of at least 32 characters in production"
            )
        if not config["PUBLIC_URL"]:
            raise ConfigError(
                "PUBLIC_URL must be set in production (e.g. https://refer.example.com): every "
                "link in emails, SMS, webhooks and QR codes is built from it, never from the "
                "request's Host header"
            )
    _check_development_only(config)
    _check_locale(config)
    if config["PASSWORD_HASH_METHOD"] != DEFAULTS["PASSWORD_HASH_METHOD"] and not app.testing:
        raise ConfigError("PASSWORD_HASH_METHOD may only be changed in a test configuration")
    if config["TRUSTED_PROXY_COUNT"] < 0:
        raise ConfigError("TRUSTED_PROXY_COUNT cannot be negative")
    currency = config["DEFAULT_CURRENCY"]
    if len(currency) != 3 or not currency.isalpha():
        raise ConfigError("DEFAULT_CURRENCY must be a three-letter ISO code such as USD")
    if config["PAYOUT_MINIMUM"] < 1:
        raise ConfigError("PAYOUT_MINIMUM must be at least 1 (minor units)")
    if config["REVIEW_DAYS"] < 1:
        raise ConfigError("REVIEW_DAYS must be at least 1")
    _check_login_failure_limits(config["LOGIN_FAILURE_LIMITS"])
    _check_services(config)
    _check_outbox(app)


def _check_outbox(app: Flask) -> None:
    config = app.config
    delivery = config["OUTBOX_DELIVERY"]
    if delivery not in ("celery", "thread", "inline"):
        raise ConfigError("OUTBOX_DELIVERY must be 'celery' or 'thread'")
    if delivery == "inline" and not app.testing:
        # Inline delivery makes the request wait on SMTP and webhooks: tests only.
        raise ConfigError("OUTBOX_DELIVERY=inline is for tests only; use 'thread' or 'celery'")
    for name in (
        "OUTBOX_MAX_ATTEMPTS",
        "OUTBOX_LEASE_SECONDS",
        "OUTBOX_POLL_SECONDS",
        "OUTBOX_KEEP_SENT_DAYS",
    ):
        if config[name] < 1:
            raise ConfigError(f"{name} must be at least 1")


def _check_locale(config) -> None:
    locale = config["DEFAULT_LOCALE"]
    if locale not in LANGUAGES:
        raise ConfigError(f"DEFAULT_LOCALE must be one of {', '.join(LANGUAGES)}, not {locale!r}")


def _check_development_only(config) -> None:
    if config["APP_ENV"] == "production" and not config["FRAUD_SAME_IP_REVIEW"]:
        raise ConfigError(
            "FRAUD_SAME_IP_REVIEW=false is for trying referrals on one machine; production "
            "always checks whether a friend signed up from the referrer's IP address"
        )
    if config["LOG_LEVEL"] is not None and config["LOG_LEVEL"] not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    if config["LOG_FORMAT"] not in ("text", "json"):
        raise ConfigError("LOG_FORMAT must be 'text' or 'json'")


def _check_login_failure_limits(rules: str) -> None:
    """Rules that parse, and that together allow at most MAX_LOGIN_FAILURES_PER_HOUR wrong
    passwords in any rolling hour (a fixed window of w seconds can be met ceil(3600/w) + 1
    times by one hour; a longer one twice)."""
    try:
        limits = parse_many(rules)
    except ValueError:
        raise ConfigError(
            f"LOGIN_FAILURE_LIMITS must be rules like '10/minute;50/hour', not {rules!r}"
        ) from None
    most = min(
        limit.amount
        * (math.ceil(3600 / limit.get_expiry()) + 1 if limit.get_expiry() <= 3600 else 2)
        for limit in limits
    )
    if most > MAX_LOGIN_FAILURES_PER_HOUR:
        raise ConfigError(
            f"LOGIN_FAILURE_LIMITS {rules!r} allows up to {most} wrong passwords for one account "
            f"in an hour; at most {MAX_LOGIN_FAILURES_PER_HOUR} are allowed (add e.g. '50/hour')"
        )


def _check_services(config) -> None:
    """The outside services the settings point at: well-formed URLs, a known SMS backend."""
    saleor_url = config["SALEOR_API_URL"]
    if saleor_url and not saleor_url.startswith(("http://", "https://")):
        raise ConfigError("SALEOR_API_URL must start with http:// or https://")
    for allowed in (config["SALEOR_ALLOWED_API_URLS"] or "").split(","):
        if allowed.strip() and not allowed.strip().startswith(("http://", "https://")):
            raise ConfigError(f"SALEOR_ALLOWED_API_URLS: {allowed.strip()!r} is not an http(s) URL")
    if config["SMS_BACKEND"] not in ("console", "http"):
        raise ConfigError("SMS_BACKEND must be 'console' or 'http'")
    sms_url = config["SMS_HTTP_URL"] or ""
    if config["SMS_BACKEND"] == "http" and not sms_url.startswith(("http://", "https://")):
        raise ConfigError(
            "SMS_BACKEND=http needs SMS_HTTP_URL, the provider's http:// or https:// endpoint"
        )
    public_url = config["PUBLIC_URL"]
    if public_url and not public_url.startswith(("http://", "https://")):
        raise ConfigError("PUBLIC_URL must start with http:// or https://")
    if config["METRICS_TOKEN"] is not None and len(config["METRICS_TOKEN"]) < 16:
        raise ConfigError("METRICS_TOKEN must be at least 16 characters (a random value)")
