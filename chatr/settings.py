"""The one place that reads environment variables.

Everything else receives a `Settings` instance, so tests can build an app for any
configuration (a second instance, a private Redis, production mode) without touching
the process environment.
"""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path(".chatr")


class InvalidSetting(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidSetting(f"{name}: {value!r} is not a whole number") from None
    if minimum is not None and number < minimum:
        raise InvalidSetting(f"{name}: {value!r} is less than {minimum}")
    return number


def _limit(env: dict[str, str], name: str, default: str) -> str:
    """A rate in the `limits` notation ("100 per minute"), checked now rather than when the
    first request needs it."""
    from limits import parse

    value = env.get(name) or default
    try:
        parse(value)
    except ValueError:
        raise InvalidSetting(f"{name}: {value!r} is not a rate like '100 per minute'") from None
    return value


def _float(
    env: dict[str, str], name: str, default: float, *, minimum: float | None = None
) -> float:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise InvalidSetting(f"{name}: {value!r} is not a number") from None
    if minimum is not None:
        if not math.isfinite(number):
            raise InvalidSetting(f"{name}: {value!r} is not a finite number")
        if number < minimum:
            raise InvalidSetting(f"{name}: {value!r} is less than {minimum:g}")
    return number


#: Rate limits (rule name -> `limits` notation) that replace the strict ones in development,
#: so someone exploring the API (registering test accounts, mistyping passwords, asking for
#: codes again) is not locked out for 15 minutes after the sixth try, while each limit still
#: exists and answers RATE_LIMITED when reached. The names are the rules of
#: chatr.infra.rate_limits (an unknown name stops the app at start-up).
GENEROUS_RATE_LIMITS: tuple[tuple[str, str], ...] = (
    ("register", "1000 per 15 minutes"),
    ("login", "1000 per 15 minutes"),
    ("login_account", "100 per 15 minutes"),
    ("guest_session", "1000 per 15 minutes"),
    ("resend_code", "30 per 5 minutes"),
    ("two_factor", "60 per 15 minutes"),
    ("two_factor_code_sends", "50 per 15 minutes"),
    ("password_reset", "30 per 15 minutes"),
)
#: CHATR_RATE_LIMITS values: the rules as written, the development ones, or none at all.
RATE_LIMIT_MODES = ("strict", "generous", "off")


def rate_limit_mode(value: str | None, environment: str) -> str:
    """CHATR_RATE_LIMITS: `strict`, `generous` or `off`; unset, strict in production and
    generous otherwise. The old boolean spellings still work (on: strict, off: off)."""
    text = (value or "").strip().lower()
    if not text:
        return "strict" if environment == "production" else "generous"
    if text in RATE_LIMIT_MODES:
        return text
    if text in {"1", "true", "yes", "on"}:
        return "strict"
    if text in {"0", "false", "no"}:
        return "off"
    raise InvalidSetting(f"CHATR_RATE_LIMITS: {value!r} is not one of strict, generous, off")


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Runtime configuration; defaults are the embedded, no-services setup."""

    database_url: str = ""
    #: `redis://…` for several instances; `memory://` is the in-process broker.
    broker_url: str = "memory://"
    #: Prefix of every pub/sub channel, so several deployments (or test runs) can share a Redis.
    channel_prefix: str = "chatr"
    jwt_secret: str = ""
    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    #: A refresh token presented again this soon after it was rotated gets the same successor
    #: (two tabs refreshing at once); later, reuse revokes the session as a stolen copy.
    refresh_reuse_grace_seconds: float = 20.0
    #: "development" enables GraphiQL and introspection; "production" disables both.
    environment: str = "development"
    data_dir: Path = DEFAULT_DATA_DIR
    media_dir: Path = field(default=DEFAULT_DATA_DIR / "media")
    allowed_origins: tuple[str, ...] = ()
    #: Addresses or networks (CIDR) of the reverse proxies / load balancers in front of
    #: chatr. Only their X-Forwarded-For is believed; empty (the default): nobody's is, and
    #: the client address is the TCP peer's. Rate limits key on it, so a wrong value either
    #: lets anyone forge fresh addresses or puts every client behind one proxy on one counter.
    trusted_proxies: tuple[str, ...] = ()
    max_query_depth: int = 10
    max_aliases: int = 15
    max_query_tokens: int = 2000
    #: Field selections per document once fragments are expanded (chatr.schema.validation).
    max_selections: int = 2000
    max_request_body_bytes: int = 256 * 1024
    #: A GraphQL multipart request (files sent with the operation, `uploadFile`): its whole
    #: body, and how many files it may carry. Larger files go through `createUpload`.
    max_multipart_bytes: int = 10 * 1024 * 1024
    max_multipart_files: int = 10
    max_websocket_frame_bytes: int = 64 * 1024
    max_subscriptions_per_connection: int = 100
    #: Operations in one batched HTTP request (a JSON array); each counts as if sent alone.
    max_batch: int = 10
    #: How long an automatic persisted query stays in Redis after its last use, seconds
    #: (the embedded default keeps a bounded LRU in memory instead).
    persisted_query_ttl_seconds: int = 24 * 3600
    #: A JSON manifest (hash → document): when set, only these documents run over HTTP.
    trusted_documents: Path | None = None
    #: Where GraphiQL's assets were installed (`npm ci` in graphiql/, by scripts/bootstrap).
    graphiql_assets_dir: Path | None = None
    #: WebSockets one user may hold open on one instance (0: no cap): a tab each, over a
    #: few devices. Counted per instance (chatr.socket_registry).
    max_sockets_per_user: int = 20
    #: WebSockets one client address may hold open on one instance (0: no cap): room for an
    #: office or campus behind one NAT address. Counted per instance.
    max_sockets_per_ip: int = 100
    #: An unauthenticated socket running no operation for this long is closed with 4408
    #: (0: never); connecting needs no token, holding a socket idle should.
    anonymous_socket_idle_seconds: float = 60.0
    #: Live events a subscriber may have queued before it is cut off (it resumes by cursor).
    subscriber_queue_size: int = 1000
    db_pool_size: int = 10
    #: PostgreSQL: send statements one process runs at once; sends that arrive while all are
    #: busy share the next one (chatr.aio.GroupCommit). One: on two cores, fewer and larger
    #: statements beat overlapping ones (docs/architecture.md, "Group commit").
    send_batch_concurrency: int = 1
    #: PostgreSQL: how long at most a free send slot waits for sends already on their way to
    #: it (past the rate limit and the checks), so they share its statement (0: never waits;
    #: chatr.aio.GroupCommit, docs/architecture.md "Group commit").
    send_hold_ms: float = 3.0
    #: How long at most a session checked live is trusted without asking the database again
    #: (each for a random part of it, from half on: chatr.infra.session_cache); revocations
    #: evict it everywhere at once, this only bounds a missed announcement.
    session_cache_seconds: float = 10.0
    #: How often the live hub re-reads the event log although nothing was announced: bounds
    #: the delay of an event whose announcement was lost for good (process killed between
    #: commit and publish).
    live_tick_seconds: float = 2.0
    #: `smtp://user:pass@host:port?starttls=1` / `smtps://…`; empty: mail goes to the log.
    smtp_url: str = ""
    mail_from: str = "chatr <no-reply@chatr.local>"
    #: SMS webhook (chatr.infra.sms): codes are POSTed as JSON here; empty: texts go to the log.
    sms_webhook_url: str = ""
    #: Sent as `Authorization: Bearer …` to the SMS webhook when set.
    sms_webhook_token: str = ""
    #: Production refuses to start without SMTP and an SMS webhook, since sign-up, sign-in and
    #: reset codes would reach nobody; this opt-out starts it anyway (codes are then dropped,
    #: never logged). Development logs codes instead.
    accept_undelivered_codes: bool = False
    #: Per-IP and per-user rate limits (chatr.infra.rate_limits); off only for tests/dev.
    rate_limits: bool = True
    #: Rule name -> limit replacing that rule's strict one (`load_settings` puts
    #: GENEROUS_RATE_LIMITS here in development); empty: every rule as written.
    rate_limit_overrides: tuple[tuple[str, str], ...] = ()
    #: The per-user flood guard on sendMessage, in `limits` notation ("100 per minute").
    send_message_limit: str = "100 per minute"
    #: The per-user flood guards on editing messages and on reactions (same mechanism).
    edit_message_limit: str = "60 per minute"
    reaction_limit: str = "120 per minute"
    #: The same guard on a user's own inbox changes: mute, archive and pin a conversation,
    #: star a message, delete one for themselves.
    inbox_change_limit: str = "120 per minute"
    #: How long after sending a text message its sender may still edit it; 0: forever.
    message_edit_window_seconds: float = 0.0
    #: Messages pinned in one conversation at most.
    max_pinned_messages: int = 50
    #: Where uploads are stored: `local` (`media_dir`, served by chatr) or `s3`.
    storage_backend: str = "local"
    #: S3: the bucket, and an endpoint for S3-compatible stores (empty: AWS's own).
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    #: Empty: boto3's own credential chain (environment, profile, instance role).
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    #: The address clients reach this server at (`https://chat.example.com`): the upload and
    #: download URLs chatr signs itself start with it. Empty: they are paths (`/media/…`).
    public_url: str = ""
    #: One file's upper bound, bytes (features: 50 MB).
    max_upload_bytes: int = 50 * 1024 * 1024
    #: Storage one user's uploads may take, bytes (0: no quota).
    upload_quota_bytes: int = 1024 * 1024 * 1024
    #: The per-user flood guard on createUpload, in `limits` notation.
    upload_limit: str = "60 per 10 minutes"
    #: An upload attached to nothing this long after it was created is deleted.
    upload_ttl_seconds: int = 3600
    #: How long a signed upload URL (or presigned POST) accepts the bytes.
    upload_url_ttl_seconds: int = 900
    #: How long a signed download URL works.
    download_url_ttl_seconds: int = 300
    #: How often expired uploads are looked for.
    upload_sweep_seconds: float = 60.0
    #: Fetch a preview of the first URL of each text message (chatr.services.link_previews).
    link_previews: bool = True
    #: Tests only: previews may be fetched from 127.0.0.1/::1 (every other private, loopback
    #: and link-local address stays refused). Never in production.
    link_preview_allow_loopback: bool = False
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.database_url:
            object.__setattr__(self, "database_url", normalise_database_url(self.database_url))

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _embedded_database_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{(data_dir / 'chatr.db').as_posix()}"


def _persistent_secret(data_dir: Path) -> str:
    """A random signing key kept in the data dir, so restarts keep sessions valid.

    Only for the embedded default: several instances must share JWT_SECRET explicitly.
    """
    path = data_dir / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


def networks(text: str | None) -> tuple[str, ...]:
    """Comma-separated IP addresses or CIDR networks, normalised; ValueError names the first
    that is not one (a typo must stop the server, not silently trust nobody or everybody)."""
    normalised = []
    for value in _list(text):
        try:
            normalised.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError as error:
            raise InvalidSetting(
                f"CHATR_TRUSTED_PROXIES: {value!r} is not an IP or network"
            ) from error
    return tuple(normalised)


def normalise_database_url(url: str) -> str:
    """Accept the usual `postgresql://` spelling and pick the async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        url = "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build settings from `CHATR_*` environment variables (plus DATABASE_URL / REDIS_URL)."""
    env = dict(os.environ if env is None else env)
    environment = env.get("CHATR_ENV", "development")
    limits_mode = rate_limit_mode(env.get("CHATR_RATE_LIMITS"), environment)
    data_dir = Path(env.get("CHATR_DATA_DIR") or DEFAULT_DATA_DIR)
    database_url = env.get("CHATR_DATABASE_URL") or env.get("DATABASE_URL") or ""
    database_url = normalise_database_url(database_url) if database_url else ""
    redis_url = env.get("CHATR_REDIS_URL") or env.get("REDIS_URL") or ""
    jwt_secret = env.get("CHATR_JWT_SECRET") or env.get("JWT_SECRET") or ""
    if not database_url:
        data_dir.mkdir(parents=True, exist_ok=True)
        database_url = _embedded_database_url(data_dir)
    if not jwt_secret:
        jwt_secret = _persistent_secret(data_dir)
    return Settings(
        database_url=database_url,
        broker_url=redis_url or "memory://",
        channel_prefix=env.get("CHATR_CHANNEL_PREFIX", "chatr"),
        jwt_secret=jwt_secret,
        access_token_ttl_seconds=_int(env, "CHATR_ACCESS_TOKEN_TTL", 15 * 60),
        refresh_token_ttl_seconds=_int(env, "CHATR_REFRESH_TOKEN_TTL", 30 * 24 * 3600),
        refresh_reuse_grace_seconds=_float(env, "CHATR_REFRESH_REUSE_GRACE_SECONDS", 20.0),
        environment=environment,
        data_dir=data_dir,
        media_dir=Path(env.get("CHATR_MEDIA_DIR") or data_dir / "media"),
        allowed_origins=_list(env.get("CHATR_ALLOWED_ORIGINS")),
        trusted_proxies=networks(env.get("CHATR_TRUSTED_PROXIES")),
        max_query_depth=_int(env, "CHATR_MAX_QUERY_DEPTH", 10),
        max_aliases=_int(env, "CHATR_MAX_ALIASES", 15),
        max_query_tokens=_int(env, "CHATR_MAX_QUERY_TOKENS", 2000),
        max_selections=_int(env, "CHATR_MAX_SELECTIONS", 2000),
        max_request_body_bytes=_int(env, "CHATR_MAX_REQUEST_BYTES", 256 * 1024),
        max_multipart_bytes=_int(env, "CHATR_MAX_MULTIPART_BYTES", 10 * 1024 * 1024),
        max_multipart_files=_int(env, "CHATR_MAX_MULTIPART_FILES", 10),
        max_websocket_frame_bytes=_int(env, "CHATR_MAX_WS_FRAME_BYTES", 64 * 1024),
        max_subscriptions_per_connection=_int(env, "CHATR_MAX_SUBSCRIPTIONS", 100),
        max_batch=_int(env, "CHATR_MAX_BATCH", 10),
        persisted_query_ttl_seconds=_int(env, "CHATR_PERSISTED_QUERY_TTL", 24 * 3600),
        trusted_documents=_path(env.get("CHATR_TRUSTED_DOCUMENTS")),
        graphiql_assets_dir=_path(env.get("CHATR_GRAPHIQL_ASSETS")),
        max_sockets_per_user=_int(env, "CHATR_MAX_SOCKETS_PER_USER", 20),
        max_sockets_per_ip=_int(env, "CHATR_MAX_SOCKETS_PER_IP", 100),
        anonymous_socket_idle_seconds=_float(env, "CHATR_ANONYMOUS_SOCKET_IDLE_SECONDS", 60.0),
        subscriber_queue_size=_int(env, "CHATR_SUBSCRIBER_QUEUE_SIZE", 1000),
        db_pool_size=_int(env, "CHATR_DB_POOL_SIZE", 10),
        send_batch_concurrency=_int(env, "CHATR_SEND_BATCH_CONCURRENCY", 1, minimum=1),
        send_hold_ms=_float(env, "CHATR_SEND_HOLD_MS", 3.0, minimum=0.0),
        session_cache_seconds=_float(env, "CHATR_SESSION_CACHE_SECONDS", 10.0),
        live_tick_seconds=_float(env, "CHATR_LIVE_TICK_SECONDS", 2.0),
        rate_limits=limits_mode != "off",
        rate_limit_overrides=GENEROUS_RATE_LIMITS if limits_mode == "generous" else (),
        send_message_limit=_limit(env, "CHATR_SEND_MESSAGE_LIMIT", "100 per minute"),
        edit_message_limit=_limit(env, "CHATR_EDIT_MESSAGE_LIMIT", "60 per minute"),
        reaction_limit=_limit(env, "CHATR_REACTION_LIMIT", "120 per minute"),
        inbox_change_limit=_limit(env, "CHATR_INBOX_CHANGE_LIMIT", "120 per minute"),
        message_edit_window_seconds=_float(env, "CHATR_MESSAGE_EDIT_WINDOW_SECONDS", 0.0),
        max_pinned_messages=_int(env, "CHATR_MAX_PINNED_MESSAGES", 50),
        smtp_url=env.get("CHATR_SMTP_URL", ""),
        mail_from=env.get("CHATR_MAIL_FROM", "chatr <no-reply@chatr.local>"),
        sms_webhook_url=env.get("CHATR_SMS_WEBHOOK_URL", ""),
        sms_webhook_token=env.get("CHATR_SMS_WEBHOOK_TOKEN", ""),
        accept_undelivered_codes=_bool(env.get("CHATR_I_ACCEPT_UNDELIVERED_CODES"), False),
        storage_backend=env.get("CHATR_STORAGE", "local"),
        s3_bucket=env.get("CHATR_S3_BUCKET", ""),
        s3_endpoint_url=env.get("CHATR_S3_ENDPOINT_URL", ""),
        s3_region=env.get("CHATR_S3_REGION") or "us-east-1",
        s3_access_key_id=env.get("CHATR_S3_ACCESS_KEY_ID", ""),
        s3_secret_access_key=env.get("CHATR_S3_SECRET_ACCESS_KEY", ""),
        public_url=(env.get("CHATR_PUBLIC_URL") or "").rstrip("/"),
        max_upload_bytes=_int(env, "CHATR_MAX_UPLOAD_BYTES", 50 * 1024 * 1024),
        upload_quota_bytes=_int(env, "CHATR_UPLOAD_QUOTA_BYTES", 1024 * 1024 * 1024),
        upload_limit=_limit(env, "CHATR_UPLOAD_LIMIT", "60 per 10 minutes"),
        upload_ttl_seconds=_int(env, "CHATR_UPLOAD_TTL_SECONDS", 3600),
        upload_url_ttl_seconds=_int(env, "CHATR_UPLOAD_URL_TTL_SECONDS", 900),
        download_url_ttl_seconds=_int(env, "CHATR_DOWNLOAD_URL_TTL_SECONDS", 300),
        upload_sweep_seconds=_float(env, "CHATR_UPLOAD_SWEEP_SECONDS", 60.0),
        link_previews=_bool(env.get("CHATR_LINK_PREVIEWS"), True),
        log_level=env.get("CHATR_LOG_LEVEL", "info"),
    )
