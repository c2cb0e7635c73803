"""What each call does: its scenario, the agent behaviour it needs, and the caller's script.

* ``loopback`` — the caller sends the probe (noise, then the 1004 Hz tone), then
  ``tail_s`` of silence so the last frames are back before it hangs up; the agent
  returns every chunk at once.  Gives relay latency, integrity and the tone's SNR.
* ``echo`` — the caller speaks 1 s bursts and waits for the agent to say them back,
  until the call's duration is up (conversation-shaped traffic: half-duplex turns).
* ``barge-in`` — the agent greets with a long message and echoes every utterance; the
  caller talks over it ``barge_after_s`` into each agent turn.  Gives barge-in → clear.
* ``mixed`` — per call, by index: 3 in 5 loopback, 1 echo, 1 barge-in.

Behaviours are the Agents Platform emulator's agent config (``agent.emulator``); when
the load test starts its own emulator it creates one agent per (behaviour, format).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.audio.g711 import ulaw_encode
from bridge.emulator.twilio.script import (
    BargeIn,
    CallerHangsUp,
    CallScript,
    Pause,
    Talk,
    WaitForAgent,
)
from bridge.loadtest.probe import Probe, band_noise, make_probe

BEHAVIOURS: dict[str, dict[str, Any]] = {
    "loopback": {"mode": "loopback", "greeting": False, "barge_in": False},
    "echo": {"mode": "echo", "greeting": False, "barge_in": True},
    "barge-in": {"mode": "echo", "greeting": True, "barge_in": True},
}
# Long enough that the caller barges in well before it ends.
GREETING = (
    "Hello and thank you for calling. This is a long greeting so that the caller has "
    "plenty of time to interrupt it, the way people do when they already know what they want."
)
BURST_S = 1.0
BARGE_AFTER_S = 0.3
_MIXED = ("loopback", "loopback", "loopback", "echo", "barge-in")


def scenario_for(index: int, scenario: str) -> str:
    return _MIXED[index % len(_MIXED)] if scenario == "mixed" else scenario


@dataclass(frozen=True)
class PlannedCall:
    index: int
    scenario: str  # loopback | echo | barge-in (never mixed)
    agent_format: str
    script: CallScript
    probe: Probe | None  # loopback calls only


def _burst(seed: int) -> bytes:
    pcm = np.clip(band_noise(round(BURST_S * 8000), seed), -32767, 32767).astype("<i2")
    return ulaw_encode(pcm.tobytes())


def build_plan(
    index: int,
    scenario: str,
    agent_format: str,
    *,
    duration_s: float,
    seed: int,
    tone_s: float = 1.0,
    tail_s: float = 0.6,
) -> PlannedCall:
    kind = scenario_for(index, scenario)
    call_seed = seed * 1_000_003 + index
    safety = duration_s + 30.0
    if kind == "loopback":
        tone = min(tone_s, max(0.0, duration_s - tail_s - 1.0))
        probe = make_probe(max(1.0, duration_s - tail_s - tone), tone, call_seed)
        script = CallScript.of(
            Talk(probe.ulaw, "probe"), Pause(tail_s), CallerHangsUp(), max_duration_s=safety
        )
        return PlannedCall(index, kind, agent_format, script, probe)
    burst = _burst(call_seed)
    turns = math.ceil(duration_s / BURST_S) + 1
    steps: list[Talk | WaitForAgent | BargeIn | Pause | CallerHangsUp]
    if kind == "echo":
        steps = []
        for _ in range(turns):
            steps += [Talk(burst, "burst"), WaitForAgent(timeout_s=5.0, quiet_s=0.4)]
    else:
        steps = [BargeIn(burst, after_s=BARGE_AFTER_S, timeout_s=5.0) for _ in range(turns)]
    script = CallScript.of(*steps, hangup_at=duration_s, max_duration_s=safety)
    return PlannedCall(index, kind, agent_format, script, None)
