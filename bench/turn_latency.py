"""How accurately the bridge measures voice-to-voice latency per turn.

    uv run python bench/turn_latency.py                 # 5 calls × 4 turns, ~40 s
    uv run python bench/turn_latency.py --calls 2 --delay-ms 800 --agent-format ulaw_8000

Runs the platform emulator, a bridge and the synthetic caller in this process, all on
loopback, in real time.  The echo agent answers every utterance ``--delay-ms`` after the
caller's speech ended (``reply_delay_ms``), so each stage the bridge records has a known
value (docs/insight.md, "Accuracy"):

* ``agent_audio`` − delay: relay of the caller's last frame to the agent and of the reply
  back, the agent's timer lateness, and the frame the two VADs may disagree on;
* ``sent`` − ``agent_audio``: the bridge's transcoding of the reply's first event;
* ``heard`` − truth, where truth is when the caller's line (the Twilio emulator's
  playout clock) started playing the reply, from the caller's last frame: mark echoes
  travel with the caller's 20 ms frames, so up to one frame late.

Prints every turn and the distribution of each error.  Not a test: nothing here fails.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

import msgspec

from bridge.app import create_app
from bridge.asgi import running_server
from bridge.audio import signals
from bridge.audio.g711 import ulaw_encode
from bridge.config import load_config
from bridge.emulator.platform import ConversationTiming, PlatformState, create_platform_app
from bridge.emulator.twilio.caller import DEFAULT_ACCOUNT_SID, place_call
from bridge.emulator.twilio.script import (
    CallerHangsUp,
    CallScript,
    Pause,
    Step,
    Talk,
    WaitForAgent,
)
from bridge.platform.agents import CreateAgentRequest
from bridge.store import NumberRecord, Store
from bridge.store.transcripts import AgentTurn

API_KEY = "bench-key"
TOKEN = "bench-auth-token"
PUBLIC = "https://bridge.test"
FRAME_S = 0.02


def tone(seconds: float) -> bytes:
    return ulaw_encode(signals.to_pcm16(signals.tone(440.0, seconds, 8000, -12.0)))


async def run(
    calls: int, turns: int, delay_ms: int, fmt: str
) -> list[tuple[float, float, float, float]]:
    """(agent_audio − delay, sent − agent_audio, heard − truth, heard) per turn, in ms."""
    state = PlatformState()
    timing = ConversationTiming(ping_interval_s=2.0, init_wait_s=0.3)
    out: list[tuple[float, float, float, float]] = []
    async with running_server(create_platform_app(state, api_key=API_KEY, timing=timing)) as pe:
        behaviour = {
            "mode": "echo",
            "greeting": False,
            "reply_delay_ms": delay_ms,
            "vad": {"end_silence_ms": 200},
        }
        agent = state.create_agent(
            msgspec_agent({"first_message": "", "language": "en", "emulator": behaviour}, fmt)
        )
        cfg = load_config(
            None,
            env={
                "BRIDGE_PUBLIC_URL": PUBLIC,
                "TWILIO_AUTH_TOKEN": TOKEN,
                "ELEVENLABS_BASE_URL": pe.http_url,
                "BRIDGE_DB": ":memory:",
            },
        )
        store = Store(":memory:")
        app = create_app(cfg, store=store)
        try:
            async with running_server(app) as bridge:
                app.state.routing.apply(NumberRecord(number="+14155556001", agent_id=agent))
                for _ in range(calls):
                    steps: list[Step] = [Pause(0.4)]
                    for i in range(turns):
                        steps += [Talk(tone(0.6 + 0.2 * i)), WaitForAgent(5, 0.4)]
                    script = CallScript.of(*steps, CallerHangsUp(), max_duration_s=60)
                    res = await place_call(
                        bridge.http_url,
                        to="+14155556001",
                        from_="+14155550111",
                        script=script,
                        auth_token=TOKEN,
                        speed=1.0,
                        voice_path="/twilio/inbound",
                        public_url=PUBLIC,
                        status_callback=None,
                        account_sid=DEFAULT_ACCOUNT_SID,
                    )
                    assert store.flush()
                    rec = store.get_call(res.call_sid)
                    assert rec is not None and res.stream is not None
                    got = [e for e in rec.transcript if isinstance(e, AgentTurn)]
                    ends = [e.t for e in res.script_events if e.kind == "talk-end"]
                    for turn, end in zip(got, ends, strict=False):
                        heard_at = min(s.start for s in res.stream.heard if s.start >= end)
                        truth = (heard_at - (end - FRAME_S)) * 1000
                        a, s, h = turn.agent_audio_ms, turn.sent_ms, turn.heard_ms
                        if a is None or s is None or h is None:
                            print(f"incomplete turn: {turn}")
                            continue
                        out.append((a - delay_ms, s - a, h - truth, h))
                        print(
                            f"turn: agent_audio {a:6.1f}  sent {s:6.1f}  heard {h:6.1f}  "
                            f"(caller's line: {truth:6.1f})"
                        )
        finally:
            store.close()
            state.close()
    return out


def msgspec_agent(agent: dict[str, object], fmt: str) -> CreateAgentRequest:
    config = {
        "agent": agent,
        "asr": {"user_input_audio_format": fmt},
        "tts": {"agent_output_audio_format": fmt},
    }
    return msgspec.convert(
        {"name": "bench echo", "conversation_config": config}, CreateAgentRequest
    )


def describe(name: str, values: list[float]) -> str:
    return (
        f"{name:<28} min {min(values):6.1f}  median {statistics.median(values):6.1f}  "
        f"max {max(values):6.1f} ms  (n={len(values)})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--turns", type=int, default=4)
    p.add_argument("--delay-ms", type=int, default=400)
    p.add_argument("--agent-format", default="pcm_16000", help="the agent's audio format")
    args = p.parse_args()
    rows = asyncio.run(run(args.calls, args.turns, args.delay_ms, args.agent_format))
    if not rows:
        print("no turns measured")
        return
    print()
    print(describe(f"agent_audio − {args.delay_ms} ms", [r[0] for r in rows]))
    print(describe("sent − agent_audio", [r[1] for r in rows]))
    print(describe("heard − caller's line", [r[2] for r in rows]))


if __name__ == "__main__":
    main()
