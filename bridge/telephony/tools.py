"""The telephony client tools: ``transfer_call`` and ``send_dtmf`` (handlers for the registry).

Both run in the call driver with the call's :class:`~bridge.call.tools.CallControl`; what
they return is the ``client_tool_result`` the agent gets, and an exception becomes a
result with ``is_error: true`` and the exception's message (the registry's rule).

``transfer_call {phone_number | sip_uri, reason?}``: the destination is normalised and
checked against ``telephony.transfer_allow`` (deny by default).  An allowed transfer
ends the call with a :class:`~bridge.call.actions.Transfer` disposition and
``wait_for_playout``: the agent's last words ("I'm putting you through") play out to
the caller (marks), then the media stream closes and Twilio's ``<Connect action>``
request is answered with the ``<Dial>``.  The tool answers at once, while the agent
socket is still open; the call record gets ``transfer_target``.

``send_dtmf {digits}``: 0-9, ``*``, ``#``, A-D and ``w`` (0.5 s pause) as in-band Q.23
tones in the caller's audio, after whatever the agent already queued (Twilio cannot
take digits over a stream).  The tool answers once the tones are queued, with their
length, so the agent knows how long they take.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from bridge.audio.g711 import ulaw_encode
from bridge.call.actions import EndReason, Transfer
from bridge.call.tools import DTMF_TOOL, TRANSFER_TOOL, CallControl, ToolRegistry
from bridge.config import TelephonyConfig
from bridge.errors import InputError
from bridge.log import log_event
from bridge.telephony import dtmf_tones
from bridge.telephony.transfer import AllowList, parse_transfer_params

logger = logging.getLogger("bridge.telephony")


_dtmf_labels = itertools.count(1)


class TelephonyTools:
    """The two handlers, bound to the telephony config (allow-list parsed once)."""

    def __init__(self, cfg: TelephonyConfig):
        self.cfg = cfg
        self.allow = AllowList(cfg.transfer_allow)

    def register(self, registry: ToolRegistry) -> ToolRegistry:
        registry.register(TRANSFER_TOOL, self.transfer_call, replace=True)
        registry.register(DTMF_TOOL, self.send_dtmf, replace=True)
        return registry

    def order_for(self, to: str) -> Transfer:
        """The transfer to ``to`` (E.164 or SIP URI) if the allow-list admits it, else
        InputError naming ``to`` (403 when not allowed): the admin API's transfer."""
        params = {"sip_uri": to} if to.startswith("sip:") else {"phone_number": to}
        try:
            dest = self.allow.check(parse_transfer_params(params)).destination
        except InputError as e:
            raise InputError("to", e.problem, status=e.status) from None
        return Transfer(dest.address, self.cfg.transfer_caller_id, self.cfg.transfer_timeout_s)

    async def transfer_call(self, call: CallControl, params: dict[str, Any]) -> str:
        try:
            req = self.allow.check(parse_transfer_params(params))
        except Exception as e:
            log_event(
                logger,
                "telephony.transfer_refused",
                logging.WARNING,
                call_sid=call.call_sid,
                asked=_asked(params),
                why=str(e),
            )
            raise
        target = req.destination.address
        log_event(
            logger,
            "telephony.transfer",
            call_sid=call.call_sid,
            to=target,
            reason=req.reason,
        )
        call.end_call(
            EndReason.TRANSFER,
            Transfer(target, self.cfg.transfer_caller_id, self.cfg.transfer_timeout_s),
            wait_for_playout=True,
        )
        return f"transferring the call to {target}"

    async def send_dtmf(self, call: CallControl, params: dict[str, Any]) -> str:
        digits = dtmf_tones.validate_digits(params.get("digits"))
        pcm = dtmf_tones.dtmf_pcm(digits)
        call.play_to_caller(ulaw_encode(pcm.tobytes()), f"dtmf-{next(_dtmf_labels)}")
        seconds = dtmf_tones.duration_s(digits)
        # The count, not the keys: an agent may be entering an account number or a PIN.
        log_event(logger, "telephony.dtmf_sent", call_sid=call.call_sid, keys=len(digits))
        return f"sent keypad tones {digits} ({seconds:.1f} s)"


def _asked(params: dict[str, Any]) -> str | None:
    v = params.get("phone_number") or params.get("sip_uri")
    return str(v)[:80] if v is not None else None
