"""What the caller experienced, as timed events and per-turn latency (pure).

Input is the synthetic caller's record (:class:`~bridge.emulator.twilio.records.CallResult`,
live while the call runs); output is :class:`Event`\\ s in call time (seconds since the
caller dialled).  The agent's audio is grouped into utterances: heard segments less than
:data:`UTTERANCE_GAP_S` apart are one utterance.

Latency is the caller's: from the end of the caller's talk (its last frame sent) to the
first agent audio the phone played after it (Twilio's playout clock, which the emulator
keeps), so it includes everything between the caller's mouth and ear: the bridge, the
agent's turn detection and reply, and the playout queue.

Live use: :func:`events` with ``now`` gives only the events that can no longer change
and before which nothing can still appear (an utterance's end is known once the line
has been idle for the gap), so a printer prints each event once, in time order, about
half a second after it happened; with ``now=None`` (call over) it gives them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.emulator.twilio.program import Outcome
from bridge.emulator.twilio.records import CallResult, describe
from bridge.emulator.twilio.script import ScriptEvent
from bridge.emulator.twilio.twiml import Connect, Verb

UTTERANCE_GAP_S = 0.4
SETTLE_S = 0.1  # records are appended as things happen; this covers a late loop turn
_CUT_S = 0.03  # an utterance that ends this close to a clear (or hang-up) was cut by it


@dataclass(frozen=True, slots=True)
class Event:
    t: float
    who: str  # call | bridge | agent | caller
    text: str

    @property
    def key(self) -> tuple[float, str, str]:
        return (round(self.t, 3), self.who, self.text)


@dataclass(frozen=True, slots=True)
class Utterance:
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Turn:
    """One caller turn and the agent's reply, as the caller heard it."""

    number: int
    talk_start: float
    talk_end: float | None  # None: still talking when the call ended
    reply_at: float | None  # first agent audio heard after the talk ended

    @property
    def latency_s(self) -> float | None:
        if self.talk_end is None or self.reply_at is None:
            return None
        return self.reply_at - self.talk_end


def utterances(result: CallResult) -> list[Utterance]:
    out: list[Utterance] = []
    for stream in result.streams:
        for seg in stream.heard:
            if not seg.data:
                continue
            if out and seg.start - out[-1].end < UTTERANCE_GAP_S:
                out[-1] = Utterance(out[-1].start, max(out[-1].end, seg.end))
            else:
                out.append(Utterance(seg.start, seg.end))
    return out


def turns(result: CallResult, script: list[ScriptEvent] | None = None) -> list[Turn]:
    """The caller's talks in order, each with the first agent audio heard after it.

    ``script``: the script's events so far (the runner's, live); default the record's,
    which the caller fills in when the call is over."""
    heard = utterances(result)
    talks: list[tuple[float, float | None]] = []
    for e in result.script_events if script is None else script:
        if e.kind == "talk-start":
            talks.append((e.t, None))
        elif e.kind == "talk-end" and talks and talks[-1][1] is None:
            talks[-1] = (talks[-1][0], e.t)
    out = []
    for i, (start, end) in enumerate(talks):
        reply = None
        if end is not None:
            nxt = talks[i + 1][0] if i + 1 < len(talks) else float("inf")
            reply = next((u.start for u in heard if end <= u.start < nxt), None)
        out.append(Turn(i + 1, start, end, reply))
    return out


def clears(result: CallResult) -> list[float]:
    return sorted(t for s in result.streams for t in s.clears)


def events(
    result: CallResult, now: float | None = None, script: list[ScriptEvent] | None = None
) -> list[Event]:
    """Every settled event by ``now`` (call time), in time order; all of them if None.
    ``script`` as for :func:`turns`."""
    script = result.script_events if script is None else script
    # Held back until nothing earlier can still appear (an utterance's end settles one
    # gap after it), so a live printer's lines come out in time order.
    horizon = float("inf") if now is None else now - SETTLE_S - UTTERANCE_GAP_S
    out: list[Event] = []
    for f in result.fetches:
        if f.error:
            out.append(Event(f.t, "bridge", f.error))  # names the request already
        else:
            verbs = ", ".join(describe(v) for v in f.verbs) or "empty TwiML"
            out.append(Event(f.t, "bridge", f"{f.why} answered (HTTP {f.status}): {verbs}"))
    for s in result.streams:
        if s.started_at is not None:
            agent = s.custom_parameters.get("agent_id")
            who = f"agent {agent}" if agent else "no agent_id parameter"
            out.append(
                Event(s.started_at, "call", f"connected: media stream {s.stream_sid} ({who})")
            )
        elif s.error:
            out.append(Event(s.ended_at or 0.0, "call", f"media stream failed: {s.error}"))
    out += _agent_events(result, now, script)
    out += _caller_events(script)
    talk_starts = [e.t for e in script if e.kind == "talk-start"]
    for t in clears(result):
        since = [x for x in talk_starts if x <= t + 1e-9]
        after = (
            f" {(t - since[-1]) * 1000:.0f} ms after the caller started talking" if since else ""
        )
        out.append(Event(t, "bridge", f"clear: the agent's audio is cut{after}"))
    if result.outcome is not None and result.ended_at is not None:
        out.append(Event(result.ended_at, "call", f"ended: {ending(result)}"))
    return sorted((e for e in out if e.t <= horizon), key=lambda e: e.t)


def _agent_events(result: CallResult, now: float | None, script: list[ScriptEvent]) -> list[Event]:
    out: list[Event] = []
    heard = utterances(result)
    talk_ends = [t.talk_end for t in turns(result, script) if t.talk_end is not None]
    cut_at = clears(result)
    stream_start = next((s.started_at for s in result.streams if s.started_at is not None), 0.0)
    for i, u in enumerate(heard):
        prev_start = heard[i - 1].start if i else -1.0
        ended = [t for t in talk_ends if prev_start < t <= u.start]
        if ended:
            text = f"reply heard {(u.start - ended[-1]) * 1000:.0f} ms after the caller stopped"
        elif i == 0 and not any(t <= u.start for t in talk_ends):
            text = f"greeting heard {(u.start - stream_start) * 1000:.0f} ms after connecting"
        else:
            text = "speaks"
        out.append(Event(u.start, "agent", text))
        settled = now is None or now >= u.end + UTTERANCE_GAP_S or i + 1 < len(heard)
        if settled:
            cut = any(abs(c - u.end) <= _CUT_S for c in cut_at)
            how = "cut off" if cut else "stops"
            out.append(Event(u.end, "agent", f"{how} ({u.end - u.start:.1f} s heard)"))
    return out


def _caller_events(script: list[ScriptEvent]) -> list[Event]:
    out: list[Event] = []
    barge_at = {round(e.t, 6) for e in script if e.kind == "barge-in"}
    start: float | None = None
    for e in script:
        if e.kind == "talk-start":
            start = e.t
            what = "barges in, talking over the agent" if round(e.t, 6) in barge_at else "talks"
            out.append(Event(e.t, "caller", f"{what} ({e.detail})"))
        elif e.kind == "talk-end":
            took = f" after {e.t - start:.1f} s" if start is not None else ""
            out.append(Event(e.t, "caller", f"stops talking{took}"))
        elif e.kind == "dtmf":
            out.append(Event(e.t, "caller", f"presses {e.detail}"))
        elif e.kind == "timeout":
            out.append(Event(e.t, "caller", f"stops waiting: the agent said nothing ({e.detail})"))
        elif e.kind == "hangup":
            out.append(Event(e.t, "caller", f"hangs up ({e.detail})"))
    return out


def ending(result: CallResult) -> str:
    """Who ended the call and how, from the caller's side."""
    stream = result.streams[-1] if result.streams else None
    after = [describe(v) for v in _after_stream(result)]
    tail = f"; then {', '.join(after)}" if after else ""
    if result.outcome is Outcome.FAILED or (stream is not None and stream.error):
        return f"failed: {stream.error if stream and stream.error else result.reason}"
    if stream is None:
        return f"{result.reason} (no media stream){tail}"
    if stream.ended_by == "caller":
        return f"the caller hung up{tail}"
    if stream.ended_by == "bridge":
        return f"the bridge ended the stream (WebSocket close {stream.close_code}){tail}"
    if stream.ended_by == "rest":
        return f"the bridge hung up over the Twilio REST API{tail}"
    return f"{result.reason}{tail}"


def _after_stream(result: CallResult) -> list[Verb]:
    """The TwiML verbs the caller met after the (last) media stream."""
    seen = False
    out: list[Verb] = []
    for verb in result.experience:
        if isinstance(verb, Connect):
            seen, out = True, []
        elif seen:
            out.append(verb)
    return out


def clean(result: CallResult) -> str | None:
    """None when the call connected to an agent and ended cleanly; else why not (one line)."""
    if not result.streams:
        hook = result.webhook
        if hook is not None and hook.status == 403:
            return (
                "the bridge refused the webhook's signature (HTTP 403): set TWILIO_AUTH_TOKEN "
                "to the auth token the bridge runs with"
            )
        if hook is not None and hook.error:
            return hook.error
        verbs = ", ".join(describe(v) for v in result.experience) or "nothing"
        return (
            f"no agent took the call to {result.to}: the bridge answered {verbs} and no "
            "media stream (no route and no default agent, or no capacity: see its log)"
        )
    first = result.streams[0]
    if first.started_at is None:
        return f"the media stream did not open: {first.error or first.ended_by}"
    if not first.custom_parameters.get("agent_id"):
        return f"no agent took the call to {result.to}: the stream names no agent"
    if result.outcome is not Outcome.COMPLETED:
        return f"the call {ending(result)}"
    for s in result.streams:
        if s.error:
            return f"the media stream failed: {s.error}"
        if s.ended_by == "bridge" and s.close_code not in (1000, None):
            return f"the bridge closed the media stream with code {s.close_code}"
    return None
