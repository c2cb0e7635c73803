from __future__ import annotations

import numpy as np
import pytest

from bridge.audio.g711 import ulaw_decode
from bridge.call.actions import EndReason, Transfer
from bridge.call.tools import default_tools
from bridge.config import TelephonyConfig
from bridge.errors import InputError
from bridge.telephony.dtmf_tones import detect_pcm
from bridge.telephony.tools import TelephonyTools
from tests.telephony.fakes import FakeCall


async def test_allowed_transfer_ends_the_call_after_playout_with_a_dial() -> None:
    tools = TelephonyTools(
        TelephonyConfig(
            transfer_allow=("+1415*",), transfer_caller_id="+14155550100", transfer_timeout_s=20
        )
    )
    call = FakeCall()
    out = await tools.transfer_call(call, {"phone_number": "+1 415 555 0123", "reason": "sales"})
    assert out == "transferring the call to +14155550123"
    assert call.ended == [(EndReason.TRANSFER, Transfer("+14155550123", "+14155550100", 20), True)]


async def test_refused_transfer_raises_and_leaves_the_call_alone() -> None:
    tools = TelephonyTools(TelephonyConfig())
    call = FakeCall()
    with pytest.raises(InputError, match="not an allowed transfer destination"):
        await tools.transfer_call(call, {"phone_number": "+14155550123"})
    assert call.ended == []


async def test_registry_turns_a_refusal_into_an_error_result() -> None:
    registry = TelephonyTools(TelephonyConfig()).register(default_tools())
    assert {"end_call", "transfer_call", "send_dtmf"} <= registry.names
    result, is_error = await registry.run("transfer_call", FakeCall(), {"sip_uri": "sip:a@b.com"})
    assert is_error and "not an allowed" in result
    result, is_error = await registry.run("send_dtmf", FakeCall(), {})
    assert is_error and "digits" in result


async def test_send_dtmf_queues_mu_law_tones_that_decode_back() -> None:
    tools = TelephonyTools(TelephonyConfig())
    call = FakeCall()
    out = await tools.send_dtmf(call, {"digits": "12w#"})
    assert out == "sent keypad tones 12w# (1.1 s)"
    ((ulaw, label),) = call.played
    assert label.startswith("dtmf-")
    assert len(ulaw) == 8000 * 11 // 10  # one byte per sample: 1.1 s
    pcm = np.frombuffer(ulaw_decode(ulaw), dtype="<i2")
    assert detect_pcm(pcm) == "12#"
