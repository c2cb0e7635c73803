"""A whole call under a file-size limit: run as ``python -m tests.recording.disk_full_child
DIR LIMIT_BYTES``; prints one JSON line of what happened.

Its own process because the limit (RLIMIT_FSIZE, with SIGXFSZ ignored so that a write
past it fails with EFBIG instead of killing the process) holds for every file the
process writes: the test runner must not share it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
import sys
from pathlib import Path

from bridge.asgi import running_server
from bridge.emulator.platform import PlatformState, create_platform_app
from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause, Talk, WaitForAgent
from tests.e2e.conftest import tone_ulaw
from tests.fixtures.platform_emulator import API_KEY, FAST_TIMING, PlatformEmulator
from tests.recording.conftest import finalised, read_wav, recording_bridge


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(record.getMessage())


async def main(directory: Path, limit: int) -> dict[str, object]:
    logs = Collect()
    logging.getLogger("bridge").addHandler(logs)
    logging.getLogger("bridge").setLevel(logging.INFO)
    state = PlatformState()
    app = create_platform_app(state, api_key=API_KEY, timing=FAST_TIMING)
    async with running_server(app) as server:
        platform = PlatformEmulator(server.http_url, server.ws_url, API_KEY, state, FAST_TIMING)
        async with recording_bridge(platform, directory) as bridge:
            agent = platform.create_agent(behaviour={"mode": "echo"}, first_message="Hello.")
            script = CallScript.of(
                WaitForAgent(timeout_s=10),
                Talk(tone_ulaw(1.5)),
                Pause(1.0),
                Talk(tone_ulaw(1.5)),
                Pause(1.5),
                CallerHangsUp(),
                max_duration_s=30,
            )
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
            res = await bridge.call(agent, script, speed=1.0)
            await finalised(bridge, res.call_sid)
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
            stream = res.stream
            assert stream is not None and stream.started_at is not None
            wav = read_wav(directory / f"{res.call_sid}.wav")
            file_bytes = (directory / f"{res.call_sid}.wav").stat().st_size
            heard = [(s.start - stream.started_at, len(s.data)) for s in stream.heard]
            return {
                "outcome": res.outcome.value if res.outcome else None,
                "end_reason": bridge.call_record_reason(res.call_sid),
                "stream_s": (stream.ended_at or 0) - stream.started_at,
                "heard": heard,
                "wav_frames": wav.frames,
                "file_bytes": file_bytes,
                "errors_efbig": bridge.metric("bridge_recording_errors_total", reason="efbig"),
                "recordings": bridge.metric("bridge_recordings_total"),
                "calls_ok": bridge.metric(
                    "bridge_calls_total", outcome="ok", reason="caller_hangup"
                ),
                "write_failed_logs": logs.events.count("recording.write_failed"),
            }


if __name__ == "__main__":
    out = asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
    print(json.dumps(out))
