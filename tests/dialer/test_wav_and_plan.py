"""The WAV of what the caller heard (and said), and the caller's script (no sockets)."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from bridge.dialer.capture import CapturingRunner
from bridge.dialer.plan import CallPlan, build_script
from bridge.dialer.wav import call_wav
from bridge.emulator.twilio.records import CallResult, SentFrame, StreamRecord
from bridge.emulator.twilio.script import (
    BargeIn,
    CallerHangsUp,
    CallScript,
    Press,
    Talk,
    WaitForAgent,
)
from bridge.emulator.twilio.sources import tone
from bridge.errors import InputError


def _read(data: bytes) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(io.BytesIO(data)) as w:
        params = w.getparams()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return params, pcm.reshape(-1, params.nchannels)


def _call() -> CallResult:
    res = CallResult("CA1", "AC1", "inbound", "+15550001111", "+15550002222", 1.0, 0.0)
    stream = StreamRecord("wss://b/m", "ws://b/m", "MZ1", {})
    stream.started_at = 0.2
    stream.playout.push_audio(tone(440, 0.25), 0.5)  # heard 0.5 → 0.75
    res.streams.append(stream)
    return res


def test_mono_wav_is_what_was_heard_on_the_call_timeline() -> None:
    params, pcm = _read(call_wav(_call(), None, until=1.0))
    assert (params.nchannels, params.sampwidth, params.framerate, params.nframes) == (
        1,
        2,
        8000,
        8000,
    )
    heard = pcm[:, 0]
    assert not heard[:4000].any() and not heard[6000:].any()
    assert np.sqrt(np.mean(heard[4000:6000].astype(float) ** 2)) > 1000


def test_stereo_wav_puts_the_callers_frames_left_where_they_were_sent() -> None:
    res = _call()
    stream = res.streams[0]
    frames = [b"\xff" * 160, tone(1000, 0.02), b"\xff" * 160]  # frames 0-2 of the stream
    stream.frames += [SentFrame(0.2 + 0.02 * k, 160 * k, 160) for k in range(3)]
    params, pcm = _read(call_wav(res, frames, until=1.0))
    assert params.nchannels == 2
    said, heard = pcm[:, 0], pcm[:, 1]
    start = int(0.2 * 8000) + 160  # the stream's start, plus frame 0
    assert not said[:start].any() and said[start : start + 160].any()
    assert not said[start + 160 :].any()
    assert heard[4000:6000].any()


def test_capturing_runner_keeps_every_frame_it_produced() -> None:
    burst = tone(500, 0.1)
    runner = CapturingRunner(CallScript.of(Talk(burst), CallerHangsUp()))
    ticks = [runner.tick(0.02 * k, False) for k in range(8)]
    assert ticks[-1].hangup is not None
    assert b"".join(runner.frames[:5]) == burst  # then the hang-up tick: no frame
    assert len(runner.frames) == sum(1 for t in ticks if t.hangup is None)


def test_default_plan_listens_then_talks_and_waits_turn_by_turn() -> None:
    script = build_script(CallPlan())
    kinds = [type(s) for s in script.steps]
    assert kinds == [WaitForAgent, Talk, WaitForAgent, Talk, WaitForAgent, CallerHangsUp]
    talks = [s for s in script.steps if isinstance(s, Talk)]
    assert talks[0].audio != talks[1].audio and len(talks[0].audio) == 12000  # 1.5 s each


def test_barge_in_dtmf_and_hang_up_time() -> None:
    script = build_script(CallPlan(turns=1, barge_in=True, dtmf="12", hangup_after_s=9.0))
    assert isinstance(script.steps[0], BargeIn)
    assert isinstance(script.steps[1], Press) and script.steps[1].digits == "12"
    assert script.hangup_at == 9.0


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"turns": -1}, "--turns"),
        ({"talk_s": 0.0}, "--talk"),
        ({"tone_hz": 8000.0}, "--tone"),
        ({"turns": 0, "barge_in": True}, "--barge-in"),
        ({"hangup_after_s": 0.0}, "--hangup-after"),
        ({"dtmf": "1x"}, "--dtmf"),
    ],
)
def test_bad_choices_name_the_flag(kwargs: dict[str, object], flag: str) -> None:
    with pytest.raises(InputError) as e:
        CallPlan(**kwargs)  # type: ignore[arg-type]
    assert e.value.field == flag
