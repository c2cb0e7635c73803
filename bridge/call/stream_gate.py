"""The check a media stream passes when it starts, before anything is done in its name.

:class:`StreamGate` is the :class:`~bridge.call.admission.StreamCheck` a
:class:`~bridge.call.session.CallSession` is given.  On ``start``, in order:

1. ``callSid`` must look like one (non-empty, bounded);
2. with ``twilio.account_sid`` configured, ``start.accountSid`` must equal it;
3. when Twilio signatures are enforced, the stream token
   (:mod:`bridge.twilio.stream_token`) must verify against ``callSid``, ``accountSid``
   and every ``customParameter`` as received, and not be expired;
4. no stream for this call SID may be live here (a live entry is never replaced);
5. the token (and the call SID it names) must not have opened a stream before (per
   process, remembered for the token TTL plus the longest call; then, with
   deployment-wide limits, in the store: ``claim``, :mod:`bridge.store.claims`);
6. the concurrency caps (``services.stream_admission``) must have room.

1–5 refuse the start outright (untrusted); 6 refuses an authentic call (trusted: it is
recorded and ended with the over-capacity answer).  The gate owns the clocks (wall
time for token expiry, which must agree across instances; monotonic for its memory).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from bridge.call.admission import (
    AdmitAll,
    StreamAdmission,
    StreamClaim,
    StreamRefusal,
    StreamStart,
)
from bridge.call.registry import LiveCalls
from bridge.config import Config
from bridge.twilio import stream_token
from bridge.twilio.stream_token import Verdict

_CALL_SID = re.compile(r"[A-Za-z0-9]{1,64}")
_NO_CALL_LIMIT_S = 4 * 3600.0  # retention when calls have no length limit


class StreamGate:
    def __init__(
        self,
        config: Config,
        calls: LiveCalls,
        admission: StreamAdmission | None = None,
        *,
        claim: StreamClaim | None = None,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ):
        tw = config.twilio
        self.key = tw.stream_key if tw.signatures_enforced else None
        self.account_sid = tw.account_sid
        self.calls = calls
        self.admission: StreamAdmission = admission or AdmitAll()
        self.claim = claim
        self.wall = wall
        self.clock = clock
        longest = config.telephony.max_call_duration_s or _NO_CALL_LIMIT_S
        self.retain_s = tw.stream_token_ttl_s + longest

    def __call__(self, start: StreamStart) -> StreamRefusal | None:
        sid = start.call_sid
        if not _CALL_SID.fullmatch(sid):
            return StreamRefusal(Verdict.BAD_CALL_SID.value)
        if self.account_sid is not None and start.account_sid != self.account_sid:
            return StreamRefusal(Verdict.ACCOUNT_MISMATCH.value)
        checked: stream_token.Checked | None = None
        if self.key is not None:
            checked = stream_token.verify(
                self.key,
                call_sid=sid,
                account_sid=start.account_sid,
                parameters=start.parameters,
                now=self.wall(),
            )
            if checked.verdict is not Verdict.OK:
                return StreamRefusal(checked.verdict.value)
        if self.calls.get(sid) is not None:
            return StreamRefusal(Verdict.DUPLICATE_CALL.value)
        if checked is not None and not self.calls.claim(
            (f"call:{sid}", f"token:{checked.mac}"), self.clock(), self.retain_s
        ):
            return StreamRefusal(Verdict.REPLAYED.value)
        # The per-process memory above is the free first check; the store's holds for
        # every instance (a token replayed on another instance than its first).
        if (
            checked is not None
            and self.claim is not None
            and not self.claim.claim_stream(sid, checked.mac, float(checked.expires_at))
        ):
            return StreamRefusal(Verdict.REPLAYED.value)
        refusal = self.admission.admit_stream(start.parameters.get("called_number", ""), sid)
        if refusal is not None:
            return StreamRefusal(refusal.reason, trusted=True, refusal=refusal)
        return None
