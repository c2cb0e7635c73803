"""Configuration: defaults → TOML file → environment, validated once, immutable.

Config flows one way: :func:`load_config` builds a frozen :class:`Config` at start-up
and the parts of the bridge receive the section they need.  Any bad value raises
:class:`~bridge.errors.ConfigError` naming the key, the problem and the expected form,
so the process fails at once with one line instead of misbehaving on the first call.

Each field's metadata may carry:
  ``env``       the environment variable that overrides it;
  ``expected``  a human description of valid values (used in error messages);
  ``check``     a predicate on the converted value;
  ``secret``    never printed (``repr=False`` as well).
To add a key: add a field to its section with a default and a comment in
``config.example.toml``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from bridge.errors import ConfigError

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
# One process's measured capacity within the latency target (docs/performance.md).
DEFAULT_MAX_CALLS = 50
_STREAM_KEY_LABEL = b"bridge stream token v1"


def _is_http_url(v: object) -> bool:
    if not isinstance(v, str):
        return False
    u = urlsplit(v)
    return u.scheme in ("http", "https") and bool(u.netloc)


def _opt(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _key(
    default: Any = None,
    *,
    env: str | None = None,
    expected: str | None = None,
    check: Callable[[Any], bool] | None = None,
    secret: bool = False,
) -> Any:
    meta = {"env": env, "expected": expected, "check": check, "secret": secret}
    if isinstance(default, list):
        items: list[Any] = default
        return field(default_factory=lambda: list(items), metadata=meta, repr=not secret)
    return field(default=default, metadata=meta, repr=not secret)


@dataclass(frozen=True)
class ServerConfig:
    host: str = _key("127.0.0.1", env="BRIDGE_HOST", expected="a host name or IP address")
    port: int = _key(
        8080, env="BRIDGE_PORT", expected="an integer 0-65535", check=lambda v: 0 <= v <= 65535
    )
    # The https URL Twilio reaches us at; TwiML stream URLs and signatures are built on it.
    public_url: str | None = _key(
        None,
        env="BRIDGE_PUBLIC_URL",
        expected="an http(s) URL such as https://bridge.example.com",
        check=_opt(_is_http_url),
    )
    # Largest WebSocket message accepted from Twilio or the agent (bad peers can't balloon us).
    max_message_bytes: int = _key(1 << 20, expected="an integer >= 4096", check=lambda v: v >= 4096)
    # The edge (bridge/edge): everything below is checked before any request is routed,
    # so no unauthenticated request can hold memory, a connection slot or the event loop.
    # Twilio's webhooks are a few KB of form fields: anything far larger is an attack.
    max_body_bytes: int = _key(
        64 * 1024,
        env="BRIDGE_MAX_BODY_BYTES",
        expected="bytes 1024-67108864",
        check=lambda v: 1024 <= v <= 64 << 20,
    )
    max_form_fields: int = _key(200, expected="an integer 1-10000", check=lambda v: 1 <= v <= 10000)
    # The request line plus headers, in bytes and in header lines.
    max_header_bytes: int = _key(
        16 * 1024, expected="bytes 1024-1048576", check=lambda v: 1024 <= v <= 1 << 20
    )
    max_headers: int = _key(100, expected="an integer 10-1000", check=lambda v: 10 <= v <= 1000)
    # From a request's first byte (a new connection: from its opening) to its last header.
    request_head_timeout_s: float = _key(10.0, expected="seconds > 0", check=lambda v: v > 0)
    # An idle keep-alive connection is closed after this long.
    keepalive_timeout_s: float = _key(5.0, expected="seconds > 0", check=lambda v: v > 0)
    # A WebSocket upgrade must be answered (101 or refused) this long after the connection
    # opened; an accepted stream must then send "start" within calls' start timeout.
    upgrade_timeout_s: float = _key(10.0, expected="seconds > 0", check=lambda v: v > 0)
    # Open connections (live streams included); past it new requests get a fast 503 and
    # the calls in progress go on.  0 = no cap.
    max_connections: int = _key(
        1000, env="BRIDGE_MAX_CONNECTIONS", expected="an integer >= 0", check=lambda v: v >= 0
    )
    # Worker processes sharing the port (SO_REUSEPORT) under one supervisor; 0 = one per
    # CPU.  1 = the bridge is this one process.  ``bridge serve --workers`` overrides it.
    workers: int = _key(
        1,
        env="BRIDGE_WORKERS",
        expected="an integer 0-256 (0 = one per CPU)",
        check=lambda v: 0 <= v <= 256,
    )
    # This process's name among the instances sharing one store (heartbeats, call records'
    # ``instance``); unset = the host name (a pod's name in Kubernetes).  Unique per process.
    instance_id: str | None = _key(
        None,
        env="BRIDGE_INSTANCE_ID",
        expected="1-100 characters: letters, digits, '.', '_', ':' or '-'",
        check=_opt(lambda v: re.fullmatch(r"[A-Za-z0-9._:-]{1,100}", v) is not None),
    )


@dataclass(frozen=True)
class PlatformConfig:
    api_key: str | None = _key(None, env="ELEVENLABS_API_KEY", expected="a string", secret=True)
    # REST base; None means "run the built-in emulator in-process".
    base_url: str | None = _key(
        None,
        env="ELEVENLABS_BASE_URL",
        expected="an http(s) URL such as https://api.elevenlabs.io",
        check=_opt(_is_http_url),
    )
    default_agent_id: str | None = _key(None, env="BRIDGE_DEFAULT_AGENT_ID", expected="an agent id")
    connect_timeout_s: float = _key(5.0, expected="seconds > 0", check=lambda v: v > 0)
    request_timeout_s: float = _key(10.0, expected="seconds > 0", check=lambda v: v > 0)
    # How often the routing table is re-synced from the platform's phone-number list.
    sync_interval_s: float = _key(
        300.0, expected="seconds >= 0 (0 = never)", check=lambda v: v >= 0
    )

    @property
    def ws_base_url(self) -> str | None:
        """The conversation WebSocket base, derived from the REST base (http→ws, https→wss)."""
        if self.base_url is None:
            return None
        return ws_url_for(self.base_url)


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str | None = _key(
        None,
        env="TWILIO_ACCOUNT_SID",
        expected="an account SID starting with AC",
        check=_opt(lambda v: v.startswith("AC")),
    )
    auth_token: str | None = _key(None, env="TWILIO_AUTH_TOKEN", expected="a string", secret=True)
    api_base_url: str = _key(
        "https://api.twilio.com",
        env="TWILIO_API_BASE_URL",
        expected="an http(s) URL",
        check=_is_http_url,
    )
    # None = validate exactly when an auth token is configured (load_config refuses to
    # start reachable from outside loopback without one unless this is explicitly false).
    validate_signatures: bool | None = _key(
        None, env="BRIDGE_VALIDATE_TWILIO_SIGNATURES", expected="true or false"
    )
    # Key of the per-call stream token (bridge/twilio/stream_token.py); unset = derived
    # from the auth token.  Every instance behind one number must share it.
    stream_secret: str | None = _key(
        None, env="BRIDGE_STREAM_SECRET", expected="a string of 32 or more characters", secret=True
    )
    # How long after the webhook the media stream may start with the token it was given.
    stream_token_ttl_s: float = _key(
        300.0, expected="seconds 10-3600", check=lambda v: 10 <= v <= 3600
    )

    @property
    def signatures_enforced(self) -> bool:
        if self.validate_signatures is None:
            return self.auth_token is not None
        return self.validate_signatures

    @property
    def stream_key(self) -> bytes | None:
        """The stream-token key: ``stream_secret``, else one derived from the auth token
        (so a token never equals anything Twilio signs); None when neither is set."""
        if self.stream_secret is not None:
            return self.stream_secret.encode()
        if self.auth_token is not None:
            return hmac.new(self.auth_token.encode(), _STREAM_KEY_LABEL, hashlib.sha256).digest()
        return None


MIN_ADMIN_TOKEN_CHARS = 32


@dataclass(frozen=True)
class AdminConfig:
    # No token = admin API disabled entirely.  At least 32 characters (load_config).
    token: str | None = _key(
        None,
        env="BRIDGE_ADMIN_TOKEN",
        expected=f"a random string of {MIN_ADMIN_TOKEN_CHARS} or more characters",
        secret=True,
    )
    # Failed authentications one client address may make per minute; then 429.
    auth_failures_per_minute: int = _key(
        10, expected="an integer 1-10000", check=lambda v: 1 <= v <= 10000
    )


@dataclass(frozen=True)
class StoreConfig:
    db: str = _key(
        "bridge.db", env="BRIDGE_DB", expected="a file path, :memory: or a postgresql:// DSN"
    )
    # Distinct calls whose records may wait in memory while SQLite is locked or failing.
    max_pending_writes: int = _key(100_000, expected="an integer >= 1", check=lambda v: v >= 1)
    # Cap on the database file; past it writes fail as on a full disk (0 = no cap; SQLite).
    max_db_mb: int = _key(0, expected="an integer >= 0 (0 = no cap)", check=lambda v: v >= 0)
    # Instances sharing the store (bridge/store/instances.py): each heartbeats every
    # instance_heartbeat_s; one silent for instance_grace_s is dead and its live calls are
    # closed in the records (end reason instance_lost).
    instance_heartbeat_s: float = _key(
        5.0, expected="seconds 0.1-300", check=lambda v: 0.1 <= v <= 300
    )
    instance_grace_s: float = _key(30.0, expected="seconds 1-3600", check=lambda v: 1 <= v <= 3600)
    # The event bus between instances (bridge/store/bus.py): how often it is read when no
    # PostgreSQL notification woke it, and how long its events are kept.
    bus_poll_interval_s: float = _key(
        0.5, expected="seconds 0.05-10", check=lambda v: 0.05 <= v <= 10
    )
    bus_retention_s: float = _key(3600.0, expected="seconds >= 60", check=lambda v: v >= 60)


@dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = _key("info", env="BRIDGE_LOG_LEVEL")


@dataclass(frozen=True)
class Route:
    number: str = field(
        metadata={"expected": "an E.164 number such as +14155550100", "check": E164.match}
    )
    agent_id: str = field(metadata={"expected": "an agent id", "check": bool})


@dataclass(frozen=True)
class CallsConfig:
    # What a caller gets when the agent fails: a spoken apology, a transfer, or a plain hang-up.
    on_agent_failure: Literal["apology", "transfer", "hangup"] = _key("apology")
    apology_text: str = _key(
        "Sorry, we are having trouble connecting your call. Please try again later."
    )
    fallback_number: str | None = _key(
        None, expected="an E.164 number", check=_opt(lambda v: bool(E164.match(v)))
    )
    # Caller audio kept while the agent connection is being set up.
    caller_buffer_ms: int = _key(
        1000, expected="milliseconds 0-10000", check=lambda v: 0 <= v <= 10000
    )
    # Longest wait for the goodbye to be heard (marks) before hanging up.
    goodbye_timeout_s: float = _key(10.0, expected="seconds >= 0", check=lambda v: v >= 0)
    # An open agent socket that sends nothing (not even a ping) this long has failed.
    agent_idle_timeout_s: float = _key(
        30.0, expected="seconds >= 0 (0 = never)", check=lambda v: v >= 0
    )
    # The caller's voice-activity detector (turn latency): a 20 ms frame louder than this
    # is speech; this much silence after speech ends an utterance (the end is dated back
    # to the last speech frame, so this delays the decision, not the measurement).
    vad_threshold_dbfs: float = _key(-40.0, expected="dBFS -90 to 0", check=lambda v: -90 <= v <= 0)
    vad_hangover_ms: int = _key(
        300, expected="milliseconds 20-5000", check=lambda v: 20 <= v <= 5000
    )
    # Twilio sends a media frame every 20 ms, silence included: a started stream with no
    # frame for this long is dead, and its agent conversation (billed) is closed.
    stream_stall_timeout_s: float = _key(
        10.0, expected="seconds >= 0 (0 = never)", check=lambda v: v >= 0
    )


# A [telephony] transfer allow-list entry: an E.164 number, an E.164 prefix ending in "*",
# a SIP URI, or "sip:*@host" (any user at that host).  bridge/telephony/transfer.py parses it.
_TRANSFER_ALLOW = re.compile(
    r"^(\+[1-9]\d{1,14}|\+([1-9]\d{0,13})?\*|sip:(\*|[^@\s*]+)@[A-Za-z0-9.\-]+(:\d{1,5})?)$"
)


@dataclass(frozen=True)
class TelephonyConfig:
    # Transfer destinations the agent may use; empty = every agent transfer is refused.
    transfer_allow: tuple[str, ...] = _key(
        (),
        env="BRIDGE_TRANSFER_ALLOW",
        expected='E.164 numbers, prefixes such as "+1415*", SIP URIs or "sip:*@host"',
        check=lambda v: all(_TRANSFER_ALLOW.match(x) for x in v),
    )
    transfer_timeout_s: int = _key(30, expected="seconds 5-600", check=lambda v: 5 <= v <= 600)
    # Caller ID shown to the transfer target; None = Twilio's default (the caller's number).
    transfer_caller_id: str | None = _key(
        None, expected="an E.164 number", check=_opt(lambda v: bool(E164.match(v)))
    )
    # Keypad digits from the caller: sent one by one, or collected until "#" / a pause.
    dtmf_mode: Literal["each", "collect"] = _key("each")
    dtmf_deliver: Literal["user_message", "contextual_update"] = _key("user_message")
    dtmf_collect_timeout_s: float = _key(
        3.0, expected="seconds 0.5-60", check=lambda v: 0.5 <= v <= 60
    )
    dtmf_collect_max_digits: int = _key(
        32, expected="an integer 1-256", check=lambda v: 1 <= v <= 256
    )
    # Keep the digits themselves in call records (PINs, card numbers); off = counts only.
    store_digits: bool = _key(False, env="BRIDGE_STORE_DIGITS")
    # Hard cap on call length (0 = none) and how long before it the agent is warned.
    max_call_duration_s: float = _key(3600.0, expected="seconds >= 0", check=lambda v: v >= 0)
    duration_warning_s: float = _key(30.0, expected="seconds >= 0", check=lambda v: v >= 0)
    # End the call after this long without caller audio energy (0 = never).
    silence_timeout_s: float = _key(0.0, expected="seconds >= 0", check=lambda v: v >= 0)
    silence_threshold_dbfs: float = _key(
        -50.0, expected="dBFS between -90 and 0", check=lambda v: -90 <= v <= 0
    )
    # Concurrent-call caps (0 = no cap) and what a caller over the cap gets.  Counted at
    # the webhook and again when a stream starts.  The default is the measured capacity
    # of one process (docs/performance.md: 50 calls within the relay-latency target).
    max_concurrent_calls: int = _key(
        DEFAULT_MAX_CALLS,
        env="BRIDGE_MAX_CONCURRENT_CALLS",
        expected="an integer >= 0 (0 = no cap)",
        check=lambda v: v >= 0,
    )
    max_concurrent_calls_per_number: int = _key(
        0, expected="an integer >= 0", check=lambda v: v >= 0
    )
    over_capacity: Literal["reject", "message"] = _key("reject")
    # Hold the caps (and stream-token single use, outbound rate limits) in the store for
    # every instance and worker sharing it; auto = on unless store.db is :memory:.
    shared_limits: Literal["auto", "on", "off"] = _key("auto")
    # Longest wait for the store on those checks; past it (or with the store down) the
    # caps fall back to this process's own count (docs/deploy.md).
    shared_limits_timeout_s: float = _key(
        0.25, expected="seconds 0.01-5", check=lambda v: 0.01 <= v <= 5
    )
    over_capacity_message: str = _key("All our lines are busy right now. Please call again later.")
    # Outbound calls: per-number rate limit (Twilio's default is 1 call per second).
    outbound_calls_per_second: float = _key(
        1.0, expected="calls per second > 0", check=lambda v: v > 0
    )
    outbound_burst: int = _key(1, expected="an integer >= 1", check=lambda v: v >= 1)
    ring_timeout_s: int = _key(30, expected="seconds 5-600", check=lambda v: 5 <= v <= 600)
    # Answering machine on an outbound call with machine detection.
    voicemail_action: Literal["hangup", "agent", "message"] = _key("hangup")
    voicemail_message: str = _key(
        "Hello, this is an automated call. We will try to reach you again later. Goodbye."
    )


@dataclass(frozen=True)
class OpsConfig:
    # SIGTERM: calls in progress may run this long before they are ended with drain_notice.
    drain_timeout_s: float = _key(3600.0, expected="seconds >= 0", check=lambda v: v >= 0)
    drain_notice: str = _key(
        "We are sorry, this line has to close now. Please call again. Goodbye."
    )
    # Webhooks while draining: None = busy (<Reject reason="busy">), a number = <Dial> it.
    drain_overflow_number: str | None = _key(
        None, expected="an E.164 number", check=_opt(lambda v: bool(E164.match(v)))
    )
    # Readiness: the platform must have answered within upstream_stale_s; a probe asks
    # every upstream_probe_interval_s when no call has opened an agent socket meanwhile.
    upstream_probe_interval_s: float = _key(
        10.0, expected="seconds >= 0 (0 = never probe)", check=lambda v: v >= 0
    )
    upstream_stale_s: float = _key(
        30.0, expected="seconds >= 0 (0 = upstream not checked)", check=lambda v: v >= 0
    )


MIN_WEBHOOK_SECRET_CHARS = 32


@dataclass(frozen=True)
class WebhooksConfig:
    # Post-call webhooks (bridge/webhooks): each URL gets a signed POST after every call.
    urls: tuple[str, ...] = _key(
        (),
        env="BRIDGE_WEBHOOK_URLS",
        expected="http(s) URLs such as https://crm.example.com/bridge-calls",
        check=lambda v: all(_is_http_url(x) for x in v),
    )
    # HMAC-SHA256 key of the Bridge-Signature header; required when urls are set.
    secret: str | None = _key(
        None,
        env="BRIDGE_WEBHOOK_SECRET",
        expected=f"a random string of {MIN_WEBHOOK_SECRET_CHARS} or more characters",
        secret=True,
    )
    # One delivery attempt: connect, send and the receiver's answer.
    timeout_s: float = _key(10.0, expected="seconds 0.1-300", check=lambda v: 0.1 <= v <= 300)
    # A delivery is retried this long after the call ended, then marked failed.
    retry_for_s: float = _key(86400.0, expected="seconds >= 0", check=lambda v: v >= 0)
    # Exponential backoff between attempts: base * 2^(attempt-1), capped, with jitter.
    backoff_base_s: float = _key(5.0, expected="seconds > 0", check=lambda v: v > 0)
    backoff_max_s: float = _key(3600.0, expected="seconds > 0", check=lambda v: v > 0)
    # Deliveries in flight at once (over all URLs) from this instance.
    max_concurrent: int = _key(8, expected="an integer 1-256", check=lambda v: 1 <= v <= 256)


@dataclass(frozen=True)
class RecordingConfig:
    # Record what the caller heard (bridge/recording, docs/recording.md): every call when
    # enabled, else only calls to numbers whose ``record`` flag is set.
    enabled: bool = _key(False, env="BRIDGE_RECORDING")
    # Where the WAV files go; None = "recordings" next to the SQLite file (the data
    # volume: /data/recordings in the container), or ./recordings with PostgreSQL.
    dir: str | None = _key(None, env="BRIDGE_RECORDING_DIR", expected="a directory path")
    # Recordings older than this are deleted by a periodic cleanup (0 = keep forever).
    retention_days: float = _key(
        30.0, env="BRIDGE_RECORDING_RETENTION_DAYS", expected="days >= 0", check=lambda v: v >= 0
    )
    cleanup_interval_s: float = _key(3600.0, expected="seconds > 0", check=lambda v: v > 0)
    # Said (TwiML <Say>) before the stream connects on recorded calls; None = no notice.
    notice: str | None = _key(None, expected="a sentence", check=_opt(lambda v: 0 < len(v) <= 1000))

    def directory(self, db: str) -> Path:
        """The recordings directory, given the store's ``db`` setting."""
        if self.dir:
            return Path(self.dir)
        if db == ":memory:" or "://" in db:
            return Path("recordings")
        return Path(db).parent / "recordings"


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    platform: PlatformConfig = field(default_factory=PlatformConfig)
    twilio: TwilioConfig = field(default_factory=TwilioConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    log: LogConfig = field(default_factory=LogConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    telephony: TelephonyConfig = field(default_factory=TelephonyConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    routes: tuple[Route, ...] = ()

    @property
    def public_url(self) -> str:
        """Public base URL without trailing slash (falls back to the listen address)."""
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        return f"http://{self.server.host}:{self.server.port}"


def ws_url_for(http_url: str) -> str:
    """http→ws, https→wss, keeping host, port and path."""
    if http_url.startswith("https://"):
        return "wss://" + http_url[len("https://") :]
    if http_url.startswith("http://"):
        return "ws://" + http_url[len("http://") :]
    return http_url


# ---------------------------------------------------------------------------
# Loading

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, str(tp)
    )


def _convert(tp: Any, raw: Any, from_env: bool) -> Any:
    """Convert ``raw`` to ``tp``; raise ValueError with the problem on mismatch."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw is None or (from_env and raw == ""):
            return None
        return _convert(args[0], raw, from_env)
    if origin is Literal:
        choices = typing.get_args(tp)
        val = raw.lower() if from_env and isinstance(raw, str) else raw
        if val not in choices:
            raise ValueError(f"{raw!r} is not one of the allowed values")
        return val
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        if from_env and isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError(f"{raw!r} is not a boolean")
    if tp is int:
        if isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not an integer")
        if isinstance(raw, int):
            return raw
        if from_env and isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
            return int(raw)
        raise ValueError(f"{raw!r} is not an integer")
    if tp is float:
        if isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not a number")
        if isinstance(raw, int | float):
            return float(raw)
        if from_env and isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                pass
        raise ValueError(f"{raw!r} is not a number")
    if tp is str:
        if isinstance(raw, str):
            return raw
        raise ValueError(f"{type(raw).__name__} value is not a string")
    if origin is tuple or origin is list:
        (item_tp, *_) = typing.get_args(tp)
        if isinstance(raw, str) and from_env:
            raw = [p.strip() for p in raw.split(",") if p.strip()]
        if not isinstance(raw, list):
            raise ValueError("not a list")
        return tuple(_convert(item_tp, x, from_env) for x in raw)
    raise ValueError(f"unsupported type {tp}")


def _build_section(
    cls: type[Any],
    prefix: str,
    table: Mapping[str, Any],
    env: Mapping[str, str],
    source: str,
) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in table:
        if k not in names:
            raise ConfigError(
                f"{prefix}{k}", "unknown key", "one of " + ", ".join(sorted(names)), source
            )
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        meta = f.metadata
        expected = meta.get("expected") or _describe(hints[f.name])
        env_name = meta.get("env")
        raw: Any
        where: str | None
        from_env = False
        if env_name and env_name in env:
            raw, where, from_env = env[env_name], env_name, True
        elif f.name in table:
            raw, where = table[f.name], source
        else:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(key, "missing", expected, source)
            continue
        if meta.get("secret") and isinstance(raw, str) and not raw.strip():
            continue  # an empty secret is an unset one, in TOML and environment alike
        shown = "value hidden" if meta.get("secret") else None
        try:
            val = _convert(hints[f.name], raw, from_env)
        except ValueError as e:
            raise ConfigError(key, shown or str(e), expected, where) from None
        check = meta.get("check")
        if check is not None and val is not None and not check(val):
            raise ConfigError(key, shown or f"{raw!r} is not valid", expected, where)
        if val is None and f.default is not None and f.default is not dataclasses.MISSING:
            raise ConfigError(key, "missing", expected, where)
        values[f.name] = val
    return cls(**values)


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "platform": PlatformConfig,
    "twilio": TwilioConfig,
    "admin": AdminConfig,
    "store": StoreConfig,
    "log": LogConfig,
    "calls": CallsConfig,
    "telephony": TelephonyConfig,
    "ops": OpsConfig,
    "webhooks": WebhooksConfig,
    "recording": RecordingConfig,
}


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the config from defaults, the TOML file (``path`` or ``$BRIDGE_CONFIG``), then env."""
    env = dict(os.environ) if env is None else dict(env)
    if path is None and env.get("BRIDGE_CONFIG"):
        path = env["BRIDGE_CONFIG"]
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                "--config", f"file {p} does not exist", "a readable TOML file"
            ) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("--config", f"{p} is not valid TOML ({e})", "a TOML file") from None
    known = set(_SECTIONS) | {"routes"}
    for k in data:
        if k not in known:
            raise ConfigError(k, "unknown section", "one of " + ", ".join(sorted(known)), source)
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(name, "is not a table", f"a [{name}] table", source)
        sections[name] = _build_section(cls, f"{name}.", table, env, source)
    routes_raw = data.get("routes", [])
    if not isinstance(routes_raw, list):
        raise ConfigError("routes", "is not an array of tables", "[[routes]] entries", source)
    routes = []
    for i, r in enumerate(routes_raw):
        if not isinstance(r, dict):
            raise ConfigError(
                f"routes[{i}]", "is not a table", "[[routes]] with number, agent_id", source
            )
        routes.append(_build_section(Route, f"routes[{i}].", r, {}, source))
    numbers = [r.number for r in routes]
    for n in numbers:
        if numbers.count(n) > 1:
            raise ConfigError("routes", f"number {n} is routed twice", "each number once", source)
    cfg = Config(routes=tuple(routes), **sections)
    _refuse_insecure(cfg, env, source)
    return cfg


def _where(env_name: str, env: Mapping[str, str], source: str) -> str:
    """Where a key's value came from: its environment variable if set, else ``source``."""
    return env_name if env.get(env_name, "").strip() else source


_GOOD_SECRET = (
    f"at least {MIN_ADMIN_TOKEN_CHARS} random characters, e.g. the output of "
    "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
)


def _exposure(cfg: Config, env: Mapping[str, str], source: str) -> tuple[str, str] | None:
    """What makes the bridge reachable from beyond loopback, and where that was set."""
    s = cfg.server
    if s.public_url is not None and exposed(s.public_url):
        return f"server.public_url {cfg.public_url}", _where("BRIDGE_PUBLIC_URL", env, source)
    if not _loopback_host(s.host):
        return f"server.host {s.host}", _where("BRIDGE_HOST", env, source)
    return None


def exposure(cfg: Config) -> str | None:
    """What makes the bridge reachable from beyond loopback (``server.host 0.0.0.0``), or None."""
    found = _exposure(cfg, {}, "")
    return found[0] if found else None


def _refuse_insecure(cfg: Config, env: Mapping[str, str], source: str) -> None:
    """Configurations that would leave the bridge open fail here, naming the key."""
    tw = cfg.twilio
    if tw.validate_signatures and tw.auth_token is None:
        raise ConfigError(
            "twilio.validate_signatures",
            "is true but no auth token is configured",
            "TWILIO_AUTH_TOKEN set, or validation turned off",
            _where("BRIDGE_VALIDATE_TWILIO_SIGNATURES", env, source),
        )
    reach = _exposure(cfg, env, source) if tw.validate_signatures is None else None
    if tw.auth_token is None and reach is not None:
        what, where = reach
        raise ConfigError(
            "twilio.auth_token",
            f"is not set, so nothing would check Twilio's signatures, but {what} makes "
            "the bridge reachable from beyond this machine",
            "TWILIO_AUTH_TOKEN set, or BRIDGE_VALIDATE_TWILIO_SIGNATURES=false to run "
            "without signature checks (insecure: anyone can open calls to your agents)",
            where,  # what exposes it: BRIDGE_PUBLIC_URL, BRIDGE_HOST or the file
        )
    if tw.stream_secret is not None and len(tw.stream_secret) < MIN_ADMIN_TOKEN_CHARS:
        raise ConfigError(
            "twilio.stream_secret",
            f"is {len(tw.stream_secret)} characters long (value hidden)",
            _GOOD_SECRET,
            _where("BRIDGE_STREAM_SECRET", env, source),
        )
    _refuse_insecure_webhooks(cfg, env, source)
    token = cfg.admin.token
    if token is not None and len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise ConfigError(
            "admin.token",
            f"is {len(token)} characters long (value hidden)",
            _GOOD_SECRET,
            _where("BRIDGE_ADMIN_TOKEN", env, source),
        )


def _refuse_insecure_webhooks(cfg: Config, env: Mapping[str, str], source: str) -> None:
    wh = cfg.webhooks
    if not wh.urls:
        return
    if wh.secret is None:
        raise ConfigError(
            "webhooks.secret",
            "is not set, but webhooks.urls are (receivers could not verify deliveries)",
            _GOOD_SECRET,
            _where("BRIDGE_WEBHOOK_SECRET", env, source),
        )
    if len(wh.secret) < MIN_WEBHOOK_SECRET_CHARS:
        raise ConfigError(
            "webhooks.secret",
            f"is {len(wh.secret)} characters long (value hidden)",
            _GOOD_SECRET,
            _where("BRIDGE_WEBHOOK_SECRET", env, source),
        )
    # Call records leave the machine: in clear text only to this machine itself.
    if _exposure(cfg, env, source) is not None:
        for url in wh.urls:
            parts = urlsplit(url)
            if parts.scheme != "https" and not _loopback_host(parts.hostname or ""):
                raise ConfigError(
                    "webhooks.urls",
                    f"{url} is plain http to another host while the bridge is exposed",
                    "https URLs (plain http only to a loopback address)",
                    _where("BRIDGE_WEBHOOK_URLS", env, source),
                )
    if wh.backoff_max_s < wh.backoff_base_s:
        raise ConfigError(
            "webhooks.backoff_max_s",
            f"{wh.backoff_max_s:g} is below webhooks.backoff_base_s {wh.backoff_base_s:g}",
            "seconds >= backoff_base_s",
            source,
        )


def _loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a DNS name or a wildcard such as 0.0.0.0: reachable from outside


def exposed(url: str) -> bool:
    """True when ``url`` is https or names a host other than a loopback address."""
    parts = urlsplit(url)
    return parts.scheme in ("https", "wss") or not _loopback_host(parts.hostname or "")


def with_overrides(cfg: Config, **sections: Any) -> Config:
    """A copy of ``cfg`` with some sections replaced (tests and in-process emulator wiring)."""
    return dataclasses.replace(cfg, **sections)
