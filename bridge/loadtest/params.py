"""The run's parameters: parsed and checked once from the command line (pure).

Bounds are part of the parameters, not the runner: a hard cap on calls per phase and
in total, and a global deadline computed from ramp + duration + set-up allowances, after
which every call still alive is hung up and counted as it stands.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

import msgspec

from bridge.errors import InputError
from bridge.loadtest.model import Criteria

AGENT_FORMATS = (
    "ulaw_8000",
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_44100",
    "pcm_48000",
)
SCENARIOS = ("loopback", "echo", "barge-in", "mixed")
MAX_CALLS_PER_PHASE = 2000
MAX_CALLS_TOTAL = 10000
MAX_DURATION_S = 3600.0

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, what: str = "duration") -> float:
    """``"20s"``, ``"1.5m"``, ``"500ms"``, ``"60"`` (seconds) → seconds."""
    m = _DURATION.match(text)
    if not m:
        raise InputError(what, f"{text!r} is not a duration; expected e.g. 20s, 500ms, 2m")
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_counts(text: str) -> tuple[int, ...]:
    """``"100"`` or a step list ``"50,100,150"`` (each 1..MAX_CALLS_PER_PHASE)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= MAX_CALLS_PER_PHASE:
            raise InputError("--calls", f"{part!r} is not a call count 1..{MAX_CALLS_PER_PHASE}")
        out.append(int(part))
    return tuple(out)


def parse_formats(text: str) -> tuple[str, ...]:
    out = tuple(p.strip() for p in text.split(",") if p.strip())
    for f in out:
        if f not in AGENT_FORMATS:
            raise InputError("--agent-format", f"{f!r} is not one of {', '.join(AGENT_FORMATS)}")
    if not out:
        raise InputError("--agent-format", "no format given")
    return out


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to those."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_target(url: str, allow_remote: bool) -> str:
    """The target base URL without trailing slash; remote hosts only when named explicitly."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise InputError("--target", f"{url!r} is not an http(s) URL such as http://127.0.0.1:8080")
    if not is_loopback_host(u.hostname) and not allow_remote:
        raise InputError(
            "--target",
            f"{u.hostname} is not a loopback address; pass --allow-remote-target to load a "
            "host you own",
        )
    return url.rstrip("/")


class Params(msgspec.Struct, frozen=True):
    target: str | None  # None = start the bridge and the emulator as child processes
    calls: tuple[int, ...]  # calls per phase, one step after the other
    formats: tuple[str, ...]  # agent formats; every (calls, format) pair is a phase
    ramp_s: float
    duration_s: float
    scenario: str
    report_dir: str
    seed: int = 1
    numbers: tuple[str, ...] = ()  # with --target: the number routed to each format's agent
    setup_timeout_s: float = 10.0
    criteria: Criteria = Criteria()
    stop_on_failure: bool = False
    speed: float = 1.0  # caller pacing; 1.0 = real time (latency figures need it)
    tone_s: float = 1.0
    tail_s: float = 0.6  # silence after the probe, so the echo is back before hang-up
    more_targets: tuple[str, ...] = ()  # other instances: calls go round-robin over all
    workers: int = 1  # the bridge we start: its --workers
    record: bool = False  # the bridge we start records every call (bridge/recording)

    def __post_init__(self) -> None:
        if not 0 <= self.ramp_s <= MAX_DURATION_S:
            raise InputError("--ramp", f"{self.ramp_s:g}s is not within 0..{MAX_DURATION_S:g}s")
        if not 1 <= self.duration_s <= MAX_DURATION_S:
            raise InputError(
                "--duration", f"{self.duration_s:g}s is not within 1..{MAX_DURATION_S:g}s"
            )
        if self.scenario not in SCENARIOS:
            raise InputError(
                "--scenario", f"{self.scenario!r} is not one of {', '.join(SCENARIOS)}"
            )
        if sum(self.calls) * len(self.formats) > MAX_CALLS_TOTAL:
            raise InputError("--calls", f"more than {MAX_CALLS_TOTAL} calls in one run")
        if self.target is not None and len(self.numbers) != len(self.formats):
            raise InputError(
                "--to", "with --target give one routed number per --agent-format, in order"
            )
        if not 0.1 <= self.speed <= 20:
            raise InputError("--speed", f"{self.speed:g} is not within 0.1..20")
        if not 1 <= self.workers <= 64:
            raise InputError("--workers", f"{self.workers} is not within 1..64")
        if self.record and self.target is not None:
            raise InputError("--record", "applies to the bridge started here: not with --target")
        if self.workers > 1 and self.target is not None:
            raise InputError("--workers", "applies to the bridge started here: not with --target")

    def targets(self) -> tuple[str, ...]:
        """Every bridge base URL given (calls are spread over them in turn)."""
        return () if self.target is None else (self.target, *self.more_targets)

    def phases(self) -> list[tuple[int, str]]:
        """(calls, format) per phase: step counts outer, formats inner."""
        return [(n, f) for n in self.calls for f in self.formats]

    def phase_deadline_s(self) -> float:
        """Longest a phase may take before its remaining calls are cut."""
        return (
            self.ramp_s
            + (self.duration_s + self.tail_s + 2 * self.setup_timeout_s) / self.speed
            + 10.0
        )
