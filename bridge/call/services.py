"""The shared services every call uses (``app.state.services``).

Built once, complete, by :func:`bridge.app.build_bridge` (the one place the bridge is
wired) and frozen: nothing replaces a part of it afterwards, so what a call sees does
not depend on the order other parts were set up in.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.call.admission import (
    Admission,
    AdmitAll,
    Reservation,
    StreamAdmission,
    StreamClaim,
)
from bridge.call.registry import LiveCalls
from bridge.call.session import SessionSettings
from bridge.call.tools import CallControl, ToolRegistry, default_tools
from bridge.config import Config, ws_url_for
from bridge.convai.client import AgentConnector
from bridge.http import MEDIA_PATH
from bridge.metrics import Metrics
from bridge.platform.reachability import UpstreamHealth
from bridge.routing import RoutingTable
from bridge.store import Store
from bridge.twilio.rest import TwilioRest

# What the bridge does with a caller's keypad press; None = log it and go on.
KeypadHandler = Callable[[CallControl, str], Coroutine[Any, Any, None]]


class CallWatcher(Protocol):
    """A per-call companion (limits, silence, keypad), made when the stream starts."""

    def caller_audio(self, payload_b64: str) -> None:
        """Every caller media payload: the hot path, so keep it cheap."""
        ...

    def ended(self) -> None:
        """The call is over; release timers and write what was observed."""
        ...


CallWatch = Callable[[CallControl], CallWatcher]


@dataclass(frozen=True, kw_only=True)
class CallServices:
    config: Config
    routing: RoutingTable
    connector: AgentConnector
    settings: SessionSettings
    store: Store | None = None
    # Built with the app, its session opened on first use and closed at shutdown.
    twilio_rest: TwilioRest | None = None
    tools: ToolRegistry = field(default_factory=default_tools)
    calls: LiveCalls = field(default_factory=LiveCalls)
    # The voice webhook's (bridge.call.admission): drain, then the rest, in one chain.
    admission: Admission = field(default_factory=AdmitAll)
    # Asked again when a stream starts (bridge.call.stream_gate): the concurrency caps.
    stream_admission: StreamAdmission = field(default_factory=AdmitAll)
    # Deployment-wide limits in the store (bridge.telephony.shared_limits), when on: the
    # webhook's slot reservation and the stream token's single use across instances.
    reservation: Reservation | None = None
    stream_claim: StreamClaim | None = None
    metrics: Metrics = field(default_factory=Metrics)
    upstream: UpstreamHealth = field(default_factory=UpstreamHealth)  # for readiness
    on_keypad: KeypadHandler | None = None
    watch: CallWatch | None = None
    # Told each call's SID once its record is final (post-call webhooks); must not block.
    on_call_ended: Callable[[str], None] | None = None

    # Public URLs: what Twilio calls and what its signatures are computed over.
    def public(self, path: str) -> str:
        return self.config.public_url + path

    @property
    def stream_url(self) -> str:
        return ws_url_for(self.config.public_url) + MEDIA_PATH
