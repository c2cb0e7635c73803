"""Logs: JSON lines with call context; never a secret, never an audio payload."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from bridge.emulator.twilio.script import CallerHangsUp, CallScript, Talk, WaitForAgent
from bridge.log import MAX_FIELD_CHARS, QUIET_LIBRARIES, configure_logging
from tests.e2e.conftest import tone_ulaw
from tests.faults.conftest import fault_bridge
from tests.faults.test_agent_faults import HEALTHY_SCRIPT, assert_healthy, loopback_agent
from tests.fixtures.bridge import eventually
from tests.fixtures.platform_emulator import PlatformEmulator
from tests.fixtures.twilio_emulator import TwilioEmulator

ADMIN_TOKEN = "admin-token-that-must-never-be-logged"
# Any long run of base64 would be audio (a 20 ms payload is 216 characters); ids are
# shorter (CallSid 34, conversation and agent ids ~32).
BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{48,}={0,2}")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log line of the process at debug level, set up as ``bridge serve`` does."""
    out = io.StringIO()
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    quiet = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    configure_logging("debug", stream=out)
    try:
        yield out
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        root.setLevel(saved[0])
        for h in saved[1]:
            root.addHandler(h)
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


async def test_no_secret_and_no_audio_in_the_logs(
    platform_emulator: PlatformEmulator, twilio_emulator: TwilioEmulator, captured: io.StringIO
) -> None:
    p, tw = platform_emulator, twilio_emulator
    private = p.create_agent(
        behaviour={"mode": "echo"}, first_message="Hello, secrets test.", private=True
    )
    secrets = [p.api_key, tw.auth_token, ADMIN_TOKEN]
    async with fault_bridge(
        p,
        ELEVENLABS_API_KEY=p.api_key,
        TWILIO_AUTH_TOKEN=tw.auth_token,
        TWILIO_ACCOUNT_SID=tw.account_sid,
        TWILIO_API_BASE_URL=tw.http_url,
        BRIDGE_ADMIN_TOKEN=ADMIN_TOKEN,
    ) as e2e:
        script = CallScript.of(
            WaitForAgent(timeout_s=10),
            Talk(tone_ulaw(1.0)),
            WaitForAgent(timeout_s=10),
            CallerHangsUp(),
        )
        res = await e2e.call(private, script, auth_token=tw.auth_token)
        await eventually(lambda: len(e2e.app.state.calls) == 0)
        secrets += list(p.state._tokens)  # the signed URLs' tokens the bridge used
    assert res.stream is not None and res.stream.heard  # audio went both ways
    text = captured.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    events = {line["event"] for line in lines}
    assert {"call.started", "call.agent_ready", "call.summary"} <= events
    (summary,) = [line for line in lines if line["event"] == "call.summary"]
    assert summary["call_sid"] == res.call_sid and summary["conversation_id"]  # call context
    for secret in secrets:
        assert secret and secret not in text
    assert BASE64_RUN.findall(text) == []


async def test_a_huge_call_sid_makes_a_bounded_log_line(
    platform_emulator: PlatformEmulator, captured: io.StringIO
) -> None:
    p = platform_emulator
    healthy = loopback_agent(p)
    sid = "CA" + "9" * (2 << 20)  # 2 MB, in a body the (raised) size cap lets through
    async with fault_bridge(p, BRIDGE_MAX_BODY_BYTES=str(4 << 20)) as e2e:
        good = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        form = {"CallSid": sid, "From": "+15550001111", "To": "+15550002222"}
        async with httpx.AsyncClient(base_url=e2e.server.http_url) as http:
            r = await http.post(
                "/twilio/inbound?x=" + "q" * 8000, data=form, headers={"X-Twilio-Signature": "no"}
            )
        assert r.status_code == 403
        assert_healthy(e2e, await good)
    lines = captured.getvalue().splitlines()
    assert max(map(len, lines)) < 16 * 1024  # no line carries the 2 MB value
    (bad,) = [json.loads(x) for x in lines if '"twilio.signature_invalid"' in x]
    assert bad["call_sid"] == sid[:MAX_FIELD_CHARS] + f"…[{len(sid) - MAX_FIELD_CHARS} chars cut]"
    assert bad["signed_url"].endswith(" chars cut]")  # the query string is theirs too
