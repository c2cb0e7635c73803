"""The telephony features of a running bridge, and their per-call companion.

:class:`Telephony` is built once per app from the config, before the call services
(:func:`bridge.app.build_bridge` wires what it offers into them):

* ``tools``: the client tools ``transfer_call`` / ``send_dtmf``, for the tool registry;
* ``capacity``: :class:`~bridge.telephony.capacity.CapacityAdmission`, the last link of
  the webhook's admission and the stream-start admission (concurrency caps);
* :meth:`Telephony.on_keypad` gets the caller's keypad digits;
* :meth:`Telephony.watch` makes a :class:`CallFeatures` for every call whose stream
  has started.

:class:`CallFeatures` is the asyncio adapter over the pure watchers of
:mod:`bridge.telephony.limits` and :mod:`bridge.telephony.keypad`: one loop timer,
always armed for the earliest deadline among them (duration warning, duration end,
silence end, keypad entry pause).  It hears every caller media payload (the silence
watch measures its level), every keypad digit, and the end of the call, when it writes
what happened (keypad entries, warnings, limits, answering-machine verdict) into the
call record's ``events``.

Keypad digits are PINs and card numbers as often as menu choices: the record keeps
only how many were pressed, per delivery to the agent (``dtmf_delivered``) and for an
entry left unsent at the end (``dtmf_unsent``), unless ``telephony.store_digits`` asks
for the digits themselves (a ``dtmf`` event per key).  No log line carries a digit.

Answering-machine verdicts (:meth:`Telephony.answered_by`) can arrive before the stream
has started; they wait (bounded) and are applied when it does.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from bridge.audio.g711 import ulaw_decode
from bridge.call.actions import HANGUP, Apology, EndReason
from bridge.call.admission import Admission
from bridge.call.registry import LiveCalls
from bridge.call.tools import CallControl
from bridge.config import TelephonyConfig
from bridge.convai.messages import ContextualUpdate, UserMessage
from bridge.errors import BridgeError, InputError
from bridge.log import log_event
from bridge.store import Store
from bridge.telephony import voicemail
from bridge.telephony.capacity import CapacityAdmission
from bridge.telephony.keypad import KeypadCollector, KeypadMessage, KeypadPolicy
from bridge.telephony.limits import (
    DurationLimit,
    DurationWarning,
    LimitReached,
    SilenceWatch,
    rms_dbfs,
)
from bridge.telephony.tools import TelephonyTools

logger = logging.getLogger("bridge.telephony")

_MAX_PENDING = 10_000
Clock = Callable[[], float]


# --------------------------------------------------------------------------- per call


class CallFeatures:
    """Limits and keypad for one live call (see the module docstring)."""

    def __init__(self, telephony: Telephony, call: CallControl):
        self.telephony = telephony
        self.call = call
        cfg = telephony.cfg
        now = telephony.clock()
        self.started_at = now
        self.duration = DurationLimit(cfg.max_call_duration_s, cfg.duration_warning_s, now)
        self.silence = SilenceWatch(cfg.silence_timeout_s, cfg.silence_threshold_dbfs, now)
        self.keypad = KeypadCollector(
            KeypadPolicy(
                cfg.dtmf_mode,
                cfg.dtmf_deliver,
                cfg.dtmf_collect_timeout_s,
                cfg.dtmf_collect_max_digits,
            )
        )
        self.events: list[dict[str, Any]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._done = False
        self._arm()

    def _since(self) -> float:
        return round(self.telephony.clock() - self.started_at, 3)

    # -- inputs ------------------------------------------------------------------------

    def caller_audio(self, payload_b64: str) -> None:
        """One caller media payload (hot path: only measured when silence is watched)."""
        if self.silence.timeout_s <= 0 or self._done:
            return
        try:
            pcm = ulaw_decode(binascii.a2b_base64(payload_b64))
        except (binascii.Error, ValueError):
            return  # the session counts malformed payloads
        self.silence.heard(rms_dbfs(pcm), self.telephony.clock())

    def keypad_digit(self, digit: str) -> None:
        try:
            messages = self.keypad.press(digit, self.telephony.clock())
        except InputError as e:
            log_event(
                logger,
                "telephony.keypad_invalid",
                logging.WARNING,
                call_sid=self.call.call_sid,
                error=str(e),
            )
            return
        if self.telephony.cfg.store_digits:
            self.events.append({"at": self._since(), "event": "dtmf", "digit": digit})
        self._deliver(messages)
        self._arm()

    def answered_by(self, value: str) -> None:
        cfg = self.telephony.cfg
        decision = voicemail.decide(value, cfg.voicemail_action, cfg.voicemail_message)
        self.events.append({"at": self._since(), "event": "answered_by", "value": value})
        log_event(
            logger,
            "telephony.answered_by",
            call_sid=self.call.call_sid,
            answered_by=value,
            action=type(decision).__name__,
        )
        if isinstance(decision, voicemail.Disconnect):
            self.call.end_call(EndReason.VOICEMAIL, HANGUP, wait_for_playout=False)
        elif isinstance(decision, voicemail.PlayMessage):
            self.call.end_call(EndReason.VOICEMAIL, Apology(decision.text), wait_for_playout=False)
        elif isinstance(decision, voicemail.NotifyAgent):
            self.call.send_to_agent(ContextualUpdate(text=decision.text))

    def ended(self) -> None:
        if self._done:
            return
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for m in self.keypad.flush():  # nobody to tell now; keep it in the record
            entry = (
                {"digits": m.digits}
                if self.telephony.cfg.store_digits
                else {"count": len(m.digits)}
            )
            self.events.append({"at": self._since(), "event": "dtmf_unsent", **entry})
        self.telephony.call_ended(self)

    # -- timer -------------------------------------------------------------------------

    def _deadline(self) -> float | None:
        ds = [
            d
            for d in (self.duration.deadline(), self.silence.deadline(), self.keypad.deadline())
            if d is not None
        ]
        return min(ds) if ds else None

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._deadline()
        if deadline is None or self._done:
            return
        delay = max(0.0, deadline - self.telephony.clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self.poll)

    def poll(self) -> None:
        """Act on whatever is due now (the timer calls this at the earliest deadline)."""
        self._timer = None
        if self._done:
            return
        now = self.telephony.clock()
        self._deliver(self.keypad.poll(now))
        for ev in [*self.duration.poll(now), *self.silence.poll(now)]:
            if isinstance(ev, DurationWarning):
                self.events.append({"at": self._since(), "event": "duration_warning"})
                log_event(
                    logger,
                    "telephony.duration_warning",
                    call_sid=self.call.call_sid,
                    remaining_s=round(ev.remaining_s, 1),
                )
                self.call.send_to_agent(ContextualUpdate(text=ev.text))
            elif isinstance(ev, LimitReached):
                self._limit(ev)
                return
        self._arm()

    def _limit(self, ev: LimitReached) -> None:
        self.events.append({"at": self._since(), "event": "limit", "limit": ev.limit})
        log_event(
            logger,
            "telephony.limit_reached",
            logging.WARNING,
            call_sid=self.call.call_sid,
            limit=ev.limit,
            after_s=round(ev.after_s, 1),
        )
        reason = EndReason.MAX_DURATION if ev.limit == "max_duration" else EndReason.SILENCE
        self.call.end_call(reason, HANGUP, wait_for_playout=False)

    def _deliver(self, messages: list[KeypadMessage]) -> None:
        for m in messages:
            if not self.telephony.cfg.store_digits:  # (stored, the digits are in "dtmf" events)
                self.events.append(
                    {
                        "at": self._since(),
                        "event": "dtmf_delivered",
                        "count": len(m.digits),
                        "why": m.reason,
                    }
                )
            log_event(
                logger,
                "telephony.keypad",
                call_sid=self.call.call_sid,
                kind=m.kind,
                digits=len(m.digits),
                why=m.reason,
            )
            msg = (
                UserMessage(text=m.text)
                if m.kind == "user_message"
                else ContextualUpdate(text=m.text)
            )
            self.call.send_to_agent(msg)


# --------------------------------------------------------------------------- the service


class Telephony:
    def __init__(
        self,
        cfg: TelephonyConfig,
        calls: LiveCalls,
        store: Store | None = None,
        *,
        admission: Admission | None = None,
        clock: Clock = time.monotonic,
    ):
        """``admission``: what the caps ask first on a webhook (the drain)."""
        self.cfg = cfg
        self.calls = calls
        self.store = store
        self.clock = clock
        self.tools = TelephonyTools(cfg)
        self.capacity = CapacityAdmission(cfg, calls, admission, clock=clock)
        self.live: dict[str, CallFeatures] = {}
        self._amd: OrderedDict[str, str] = OrderedDict()

    def watch(self, call: CallControl) -> CallFeatures:
        features = CallFeatures(self, call)
        self.live[call.call_sid] = features
        pending = self._amd.pop(call.call_sid, None)
        if pending is not None:
            features.answered_by(pending)
        return features

    async def on_keypad(self, call: CallControl, digit: str) -> None:
        features = self.live.get(call.call_sid)
        if features is not None:
            features.keypad_digit(digit)

    def answered_by(self, call_sid: str, value: str) -> None:
        """Twilio's answering-machine verdict for ``call_sid``."""
        features = self.live.get(call_sid)
        if features is not None:
            features.answered_by(value)
            return
        self._amd[call_sid] = value
        while len(self._amd) > _MAX_PENDING:
            self._amd.popitem(last=False)

    def call_ended(self, features: CallFeatures) -> None:
        sid = features.call.call_sid
        self.live.pop(sid, None)
        self._amd.pop(sid, None)
        if not features.events or self.store is None:
            return
        try:
            rec = self.store.get_call(sid)
            before = list(rec.events) if rec is not None else []
            self.store.update_call(sid, events=[*before, *features.events])
        except BridgeError as e:
            log_event(logger, "telephony.record_failed", logging.ERROR, call_sid=sid, error=str(e))
