"""Place one synthetic call at a bridge and print what the caller experiences, live.

The caller is the Twilio emulator's (:class:`~bridge.emulator.twilio.caller.SyntheticCall`):
signed webhook, ``<Connect><Stream>``, a media stream paced at 20 ms, Twilio's playout
clock and mark echoes.  While it runs, :func:`dial` polls its record every
:data:`POLL_S` and prints each timeline event once it has settled
(:func:`~.timeline.events`); the times printed are exact (they come from the record, not
from the poll).  Ctrl-C hangs up like a caller putting the phone down.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from bridge.dialer.capture import CapturingRunner
from bridge.dialer.plan import CallPlan, build_script
from bridge.dialer.timeline import Event, events
from bridge.emulator.twilio.caller import CallSpec, SyntheticCall
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.webhook import UrlMap
from bridge.errors import InputError
from bridge.http import INBOUND_PATH, STATUS_PATH

POLL_S = 0.05
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Dial:
    bridge_url: str  # where to connect
    public_url: str  # the URL the bridge believes it is reached at (signatures, TwiML)
    to: str
    from_: str
    auth_token: str | None
    account_sid: str
    speed: float = 1.0


def line(e: Event) -> str:
    return f"{e.t:8.2f}s  {e.who:<6}  {e.text}"


async def probe(url: str, hint: str) -> None:
    """Fail with one line when nothing answers HTTP at ``url``."""
    async with httpx.AsyncClient(trust_env=False) as http:
        try:
            await http.get(url + "/healthz", timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError as e:
            raise InputError(
                "--target", f"nothing answers at {url} ({type(e).__name__}); {hint}"
            ) from None


async def dial(
    d: Dial, plan: CallPlan, show: Callable[[str], None]
) -> tuple[CallResult, list[bytes]]:
    """Run the call to its end, showing events as they settle; the record and the
    caller's own frames (for the WAV's second channel)."""
    public = d.public_url.rstrip("/")
    script = build_script(plan)
    spec = CallSpec(
        to=d.to,
        from_=d.from_,
        url=public + INBOUND_PATH,
        account_sid=d.account_sid,
        auth_token=d.auth_token,
        script=script,
        speed=d.speed,
        status_callback=urljoin(public + "/", STATUS_PATH.lstrip("/")),
        url_map=UrlMap.for_bridge(d.bridge_url, d.public_url),
    )
    runner = CapturingRunner(script)
    call = SyntheticCall(spec, runner=runner)
    show(f"Calling {d.to} at {d.bridge_url} from {d.from_}: call {call.call_sid} (Ctrl-C hangs up)")
    shown: set[tuple[float, str, str]] = set()

    def flush(now: float | None) -> None:
        for e in events(call.result, now, runner.events):
            if e.key not in shown:
                shown.add(e.key)
                show(line(e))

    loop = asyncio.get_running_loop()
    hangup_on_sigint = _on_sigint(loop, lambda: call.hang_up("Ctrl-C", by="caller"))
    task = asyncio.create_task(call.run(), name=f"bridge-call-{call.call_sid}")
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=POLL_S)
            flush(call.clock.now())
        result = task.result()
    finally:
        if hangup_on_sigint:
            loop.remove_signal_handler(signal.SIGINT)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    flush(None)
    return result, runner.frames


def _on_sigint(loop: asyncio.AbstractEventLoop, hang_up: Callable[[], None]) -> bool:
    """Ctrl-C hangs the call up (the WAV is still written); False where signals are not
    ours to handle (not the main thread, e.g. under a test)."""
    try:
        loop.add_signal_handler(signal.SIGINT, hang_up)
    except (ValueError, RuntimeError, NotImplementedError):
        return False
    return True
