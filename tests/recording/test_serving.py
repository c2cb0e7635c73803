"""GET /admin/calls/{sid}/recording: the WAV, with HTTP Range (browsers seek in it)."""

from __future__ import annotations

from pathlib import Path

from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Pause
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.recording.conftest import finalised, recording_bridge

ADMIN_TOKEN = "recording-admin-token-0123456789abcdef"


async def test_recording_is_served_with_range_support(
    platform_emulator: PlatformEmulator, tmp_path: Path
) -> None:
    async with recording_bridge(
        platform_emulator, tmp_path, env={"BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN}
    ) as bridge:
        agent = bridge.platform.create_agent(behaviour={"mode": "echo"}, first_message="Hello.")
        res = await bridge.call(agent, CallScript.of(Pause(1.0), CallerHangsUp()))
        await finalised(bridge, res.call_sid)
        whole = (tmp_path / f"{res.call_sid}.wav").read_bytes()
        size = len(whole)
        assert size >= 44 + 4 * 8000  # a second of stereo audio at least
        url = f"/admin/calls/{res.call_sid}/recording"
        async with bridge.client() as http:
            r = await http.get(url)
            assert r.status_code == 200
            assert r.headers["content-type"] == "audio/wav"
            assert r.headers["accept-ranges"] == "bytes"
            assert r.content == whole

            r = await http.get(url, headers={"Range": "bytes=0-99"})
            assert r.status_code == 206
            assert r.headers["content-range"] == f"bytes 0-99/{size}"
            assert r.content == whole[:100]
            assert r.content[:4] == b"RIFF"

            r = await http.get(url, headers={"Range": "bytes=-100"})  # the last 100 bytes
            assert r.status_code == 206
            assert r.headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
            assert r.content == whole[-100:]

            r = await http.get(url, headers={"Range": "bytes=1000-"})  # open-ended
            assert r.status_code == 206
            assert r.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"
            assert r.content == whole[1000:]

            r = await http.get(url, headers={"Range": f"bytes={size}-"})
            assert r.status_code == 416
            assert r.headers["content-range"] == f"bytes */{size}"

            # No recording, or not a SID: 404; no token: 401.
            r = await http.get("/admin/calls/CA0123456789abcdef0123456789abcdef/recording")
            assert r.status_code == 404
            r = await http.get("/admin/calls/..%2f..%2fetc%2fpasswd/recording")
            assert r.status_code == 404
        async with bridge.client(token="x" * 40) as http:
            assert (await http.get(url)).status_code == 401
