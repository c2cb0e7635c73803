"""µs of CPU per 20 ms frame through the bridge's relay, without sockets.

Runs one :class:`~bridge.call.session.CallSession` the way the driver does: a Twilio
``media`` frame (JSON text) is parsed, handled and its ``user_audio_chunk`` taken from the
queue; an agent ``audio`` event (JSON text) is parsed, handled and its Twilio frames
(media, and a mark every 100 ms) taken.  The WebSocket framing on both sockets is timed
with ``websockets``' sans-I/O protocol, as :mod:`bridge.ws` uses it.  What this leaves out
is the event loop and the kernel's share (socket reads and writes); see
``bench/relay_floor.py`` for that.

    uv run python bench/relay.py [--format pcm_16000] [--frames 20000] [--profile]
"""

from __future__ import annotations

import os

# Before numpy loads, as bridge/__init__.py does: a threaded BLAS makes tiny products slow.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import base64
import cProfile
import pstats
import time

import numpy as np
from websockets.protocol import Protocol, Side, State

from bridge.audio.formats import parse_format
from bridge.call.plan import CallPlan
from bridge.call.session import CallSession, SessionSettings
from bridge.convai import messages as convai
from bridge.twilio import media as twilio
from bridge.ws.frames import FrameSplitter, text_frame

SID = "MZ0123456789abcdef0123456789abcdef"
CALL = "CA0123456789abcdef0123456789abcdef"


def session_for(fmt: str) -> CallSession:
    s = CallSession(
        SessionSettings(),
        lambda params: CallPlan("agent_bench", "parameter"),
        tools={"end_call"},
    )
    s.caller_message(twilio.parse_from_twilio(twilio.encode(twilio.Connected())))
    body = twilio.StartBody(
        streamSid=SID, callSid=CALL, accountSid="AC" + "0" * 32, customParameters={}
    )
    s.caller_message(
        twilio.parse_from_twilio(
            twilio.encode(twilio.Start(sequenceNumber="1", start=body, streamSid=SID))
        )
    )
    s.agent_connected()
    meta = {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": "conv_bench",
            "user_input_audio_format": fmt,
            "agent_output_audio_format": fmt,
        },
    }
    s.agent_message(convai.parse_server(convai.encode(meta).decode()))  # type: ignore[arg-type]
    s.take_actions()
    while len(s.to_agent):
        s.to_agent.pop()
    return s


def run(fmt: str, frames: int) -> tuple[float, float, float]:
    s = session_for(fmt)
    rate = parse_format(fmt).sample_rate
    rng = np.random.default_rng(1)
    ulaw = [bytes(rng.integers(0, 256, 160, dtype=np.uint8)) for _ in range(50)]
    caller = [
        twilio.inbound_media_frame(
            SID, i + 2, i + 1, i * 20, base64.b64encode(ulaw[i % 50]).decode()
        )
        for i in range(frames)
    ]
    agent_bytes = rate * 2 // 50 if fmt.startswith("pcm") else 160
    chunks = [
        base64.b64encode(rng.integers(0, 256, agent_bytes, dtype=np.uint8).tobytes()).decode()
        for _ in range(50)
    ]
    agent = [
        f'{{"type":"audio","audio_event":{{"audio_base_64":"{chunks[i % 50]}","event_id":{i + 1}}}}}'
        for i in range(frames)
    ]
    to_agent, to_twilio = s.to_agent, s.to_twilio
    t0 = time.process_time()
    for text in caller:
        s.caller_message(twilio.parse_from_twilio(text))
        while len(to_agent):
            to_agent.pop()
    t1 = time.process_time()
    seq = frames + 1  # the caller frames above used 2 … frames + 1
    for text in agent:
        s.agent_message(convai.parse_server(text))
        s.take_actions()
        while len(to_twilio):
            out = to_twilio.pop()
            if '"mark"' in out[:20]:  # Twilio echoes each mark (here at once)
                seq += 1
                name = twilio.parse_from_server(out).mark.name  # type: ignore[union-attr]
                echo = twilio.Mark(str(seq), SID, twilio.MarkBody(name))
                s.caller_message(twilio.parse_from_twilio(twilio.encode(echo)))
    t2 = time.process_time()
    # Framing as bridge.ws does it on an open socket: the server side cuts a masked frame
    # out of the stream and unmasks it (FrameSplitter), and frames its answer (text_frame).
    client = Protocol(Side.CLIENT, state=State.OPEN)
    client.send_text(caller[0].encode())
    masked = b"".join(client.data_to_send())
    splitter = FrameSplitter(masked=True, max_size=1 << 20)
    answer = agent[0].encode()
    n = min(frames, 20000)
    t3 = time.process_time()
    for _ in range(n):
        splitter.feed(masked)
        text_frame(answer)
    t4 = time.process_time()
    return (
        (t1 - t0) / frames * 1e6,
        (t2 - t1) / frames * 1e6,
        (t4 - t3) / n * 1e6,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--format", default="pcm_16000,ulaw_8000,pcm_44100")
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    for fmt in a.format.split(","):
        if a.profile:
            prof = cProfile.Profile()
            prof.enable()
            run(fmt, a.frames)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            continue
        c2a, a2c, framing = run(fmt, a.frames)
        per_s = 50 * (c2a + a2c + 2 * framing)
        print(
            f"{fmt:10}  caller→agent {c2a:5.1f} µs/frame  agent→caller {a2c:5.1f} µs/event  "
            f"framing {framing:4.1f} µs per recv+send  ⇒ {per_s / 1000:.2f} ms CPU per call-second "
            "before the event loop and the kernel"
        )


if __name__ == "__main__":
    main()
