"""The calls this bridge process knows about, by CallSid.

* **live**: calls with a media stream and a running session (their
  :class:`~bridge.call.tools.CallControl`), for the admin API (``hangup(call_sid)``),
  capacity checks and shutdown.
* **expected**: calls the voice webhook answered whose stream has not started yet, so
  the stream's start updates the call record the webhook wrote instead of replacing it.
* **next steps**: what the call does once its stream is closed (a
  :data:`~bridge.call.actions.Disposition`), read by ``POST /twilio/after-stream`` when
  Twilio asks for the ``<Connect action>``.

The last two are bounded (oldest forgotten first): Twilio may never come back for an
entry (the caller hung up meanwhile), and a forgotten entry costs only a default.

* **used stream tokens** (:meth:`LiveCalls.claim`): the call SIDs and tokens that
  opened a stream here, each remembered for a retention time, so a captured token or a
  replayed webhook cannot open a second stream for the call (per process).  Only
  verified tokens are remembered, so only real calls fill it; it is bounded all the
  same (oldest forgotten first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator

from bridge.call.actions import HANGUP, Disposition, EndReason, Transfer
from bridge.call.tools import CallControl

_MAX_REMEMBERED = 10_000
_MAX_USED_TOKENS = 100_000


class _Bounded(OrderedDict[str, object]):
    def remember(self, key: str, value: object) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > _MAX_REMEMBERED:
            self.popitem(last=False)


class LiveCalls:
    def __init__(self) -> None:
        self._live: dict[str, CallControl] = {}
        self._expected = _Bounded()
        self._next = _Bounded()
        self._used: OrderedDict[str, float] = OrderedDict()  # key -> forget after (clock)
        # Told the SID of each live call that ends (set once, when the bridge is built:
        # the deployment-wide limits free the call's slot).
        self.on_removed: Callable[[str], None] | None = None

    # -- live calls ------------------------------------------------------------------

    def add(self, call: CallControl) -> bool:
        """Register a live call; False (and nothing changes) if its SID is live already."""
        if call.call_sid in self._live:
            return False
        self._live[call.call_sid] = call
        return True

    def remove(self, call_sid: str, call: CallControl | None = None) -> None:
        """Forget a live call (only if it is ``call``, when given)."""
        if call is not None and self._live.get(call_sid) is not call:
            return
        if self._live.pop(call_sid, None) is not None and self.on_removed is not None:
            self.on_removed(call_sid)

    def get(self, call_sid: str) -> CallControl | None:
        return self._live.get(call_sid)

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[CallControl]:
        return iter(list(self._live.values()))

    def count_for(self, called_number: str) -> int:
        return sum(
            1 for c in self._live.values() if c.parameters.get("called_number") == called_number
        )

    def hangup(self, call_sid: str, reason: EndReason = EndReason.ADMIN_HANGUP) -> bool:
        """End a live call at once (no goodbye wait); False if it is not live here."""
        call = self._live.get(call_sid)
        if call is None:
            return False
        call.end_call(reason, HANGUP, wait_for_playout=False)
        return True

    def transfer(self, call_sid: str, to: Transfer) -> bool:
        """Hand a live call to ``to`` at once (its stream ends with the ``<Dial>``, no
        goodbye wait); False if it is not live here."""
        call = self._live.get(call_sid)
        if call is None:
            return False
        call.end_call(EndReason.TRANSFER, to, wait_for_playout=False)
        return True

    # -- used stream tokens ----------------------------------------------------------

    def claim(self, keys: Iterable[str], now: float, retain_s: float) -> bool:
        """Mark ``keys`` (call SID, token) used; False if one of them was already.

        ``now`` / ``retain_s`` on one clock, with ``retain_s`` constant per caller, so the
        oldest entries are the first to expire and pruning stops at the first live one.
        """
        used = self._used
        while used and next(iter(used.values())) <= now:
            used.popitem(last=False)
        keys = list(keys)
        if any(k in used for k in keys):
            return False
        for k in keys:
            used[k] = now + retain_s
        while len(used) > _MAX_USED_TOKENS:
            used.popitem(last=False)
        return True

    # -- webhook → stream ------------------------------------------------------------

    def expect(self, call_sid: str) -> None:
        self._expected.remember(call_sid, time.monotonic())

    def claim_expected(self, call_sid: str) -> bool:
        """True (once) if the webhook announced this call."""
        return self._expected.pop(call_sid, None) is not None

    def awaiting_sids(self, within_s: float) -> list[str]:
        """The SIDs :meth:`awaiting_streams` counts, newest first."""
        cutoff = time.monotonic() - within_s
        sids = []
        for sid, at in reversed(self._expected.items()):
            if not isinstance(at, float) or at < cutoff:
                break
            sids.append(sid)
        return sids

    def awaiting_streams(self, within_s: float) -> int:
        """Calls announced in the last ``within_s`` seconds whose stream has not started
        (a drain waits for them: Twilio is about to open their streams)."""
        cutoff = time.monotonic() - within_s
        n = 0
        for at in reversed(self._expected.values()):  # newest first
            if not isinstance(at, float) or at < cutoff:
                break
            n += 1
        return n

    # -- stream → after-stream action ------------------------------------------------

    def set_next(self, call_sid: str, disposition: Disposition) -> None:
        self._next.remember(call_sid, disposition)

    def has_next(self, call_sid: str) -> bool:
        """True while ``call_sid``'s next step waits for ``POST /twilio/after-stream``."""
        return call_sid in self._next

    def pop_next(self, call_sid: str) -> Disposition | None:
        d = self._next.pop(call_sid, None)
        assert d is None or isinstance(d, Disposition)
        return d
