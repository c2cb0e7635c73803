"""The aligner against simulated paths: exact passthrough, a delaying filter, and damage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.audio.g711 import ulaw_encode
from bridge.loadtest.align import EchoAligner
from bridge.loadtest.probe import FRAME_SAMPLES, RATE, Probe, make_probe

F = FRAME_SAMPLES


def _lowpass_delay(x: np.ndarray, taps: int = 31) -> np.ndarray:
    """A linear-phase 3.6 kHz low-pass: delays by (taps-1)/2 samples and is not bit-exact."""
    n = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2 * 3600 / RATE * n) * np.hamming(taps)
    h /= h.sum()
    y = np.convolve(x.astype(np.float64), h)[: x.size]
    return np.clip(np.round(y), -32768, 32767).astype("<i2")


def _frames(ulaw: bytes) -> list[bytes]:
    return [ulaw[i : i + F] for i in range(0, len(ulaw), F)]


def _align(
    probe: Probe, heard_chunks: list[bytes], *, delay: float = 0.005, step: int | None = None
) -> EchoAligner:
    """Frame i sent at 20 ms * i + 1 ms; heard chunk j arrives at 20 ms * j + ``delay``
    (so frame 0 is sent just after the first audio came back: every frame is timed)."""
    al = EchoAligner(probe)
    for i in range(probe.frames):
        al.sent(i, 0.02 * i + 0.001)
    for j, chunk in enumerate(heard_chunks):
        al.heard(chunk, 0.02 * j + delay)
        if step and j % step == 0:
            al.advance()
    al.advance(final=True)
    return al


def test_passthrough_matches_every_frame_with_the_path_delay():
    probe = make_probe(2.0, 0.4, seed=1)
    al = _align(probe, _frames(probe.ulaw))
    r = al.result()
    assert (r.frames_sent, r.frames_matched, r.frames_lost) == (100, 100, 0)
    assert r.out_of_order == r.gap_events == r.frames_pending == 0
    assert r.lag_ms == 0
    assert np.allclose(al.latencies, 0.004)
    # mu-law alone leaves the tone about 38 dB above its quantisation noise
    assert r.tone_snr_db is not None and 30 < r.tone_snr_db < 45


def test_filtered_path_is_matched_and_latency_includes_the_filter_delay():
    probe = make_probe(2.0, 0.4, seed=2)
    out = ulaw_encode(_lowpass_delay(probe.linear).tobytes())
    al = _align(probe, _frames(out))
    r = al.result()
    assert r.frames_matched == 100 and r.frames_lost == 0 and r.gap_events == 0
    assert r.lag_ms == pytest.approx(15 / 8)
    # path delay plus the filter's 15 samples, for every frame
    assert np.allclose(al.latencies, 0.004 + 15 / RATE)
    assert r.tone_snr_db is not None and r.tone_snr_db > 25


def test_dropped_frames_are_lost_and_the_rest_still_match():
    probe = make_probe(2.0, 0.0, seed=3)
    frames = _frames(probe.ulaw)
    kept = [f for i, f in enumerate(frames) if i not in (10, 11, 50)]
    r = _align(probe, kept).result()
    assert (r.frames_matched, r.frames_lost, r.out_of_order, r.gap_events) == (97, 3, 0, 0)


def test_inserted_silence_is_a_gap_not_a_loss():
    probe = make_probe(2.0, 0.0, seed=4)
    frames = _frames(probe.ulaw)
    silence = ulaw_encode(bytes(400 * 2))
    heard = [*frames[:21], silence, *frames[21:]]
    r = _align(probe, heard).result()
    assert r.frames_lost == 0 and r.frames_matched == 100
    assert r.gap_events == 1 and r.gap_ms == pytest.approx(50.0)


def test_swapped_frames_are_out_of_order():
    probe = make_probe(2.0, 0.0, seed=5)
    frames = _frames(probe.ulaw)
    frames[30], frames[31] = frames[31], frames[30]
    r = _align(probe, frames).result()
    assert r.frames_lost == 0 and r.frames_matched == 100
    assert r.out_of_order == 1


def test_frames_held_during_set_up_get_no_relay_latency():
    probe = make_probe(1.0, 0.0, seed=13)
    al = EchoAligner(probe)
    for i in range(probe.frames):
        al.sent(i, 0.02 * i)
    # the agent connected after 100 ms: frames 0-5 (sent by 102 ms) were held, then real time
    for j, chunk in enumerate(_frames(probe.ulaw)):
        al.heard(chunk, max(0.1, 0.02 * j) + 0.002)
    al.advance(final=True)
    r = al.result()
    assert r.frames_matched == 50 and r.setup_frames == 6 and len(al.latencies) == 44
    assert np.allclose(al.latencies, 0.002)


def test_a_long_outage_then_recovery_loses_exactly_the_missing_frames():
    probe = make_probe(6.0, 0.0, seed=14)
    frames = _frames(probe.ulaw)
    # frames 40-139 (2 s) never come back: the aligner stops searching every frame and
    # must still find frame 140 onwards, and not lose any frame that did come back
    kept = frames[:40] + frames[140:]
    r = _align(probe, kept).result()
    assert r.frames_lost == 100 and r.frames_matched == 200


def test_frames_still_in_flight_at_hang_up_are_unheard_not_lost():
    probe = make_probe(2.0, 0.0, seed=15)
    frames = _frames(probe.ulaw)
    # frame 30 went missing; the call ended while the echo of frames 90-99 was in flight
    heard = frames[:30] + frames[31:90]
    r = _align(probe, heard).result()
    assert (r.frames_matched, r.frames_lost, r.frames_unheard) == (89, 1, 10)


def test_another_calls_audio_never_matches():
    mine, theirs = make_probe(1.0, 0.0, seed=6), make_probe(1.0, 0.0, seed=7)
    r = _align(mine, _frames(theirs.ulaw)).result()
    assert r.frames_matched == 0 and r.frames_lost == 50


def test_nothing_heard_is_pending_until_the_call_ends_then_lost():
    probe = make_probe(1.0, 0.0, seed=8)
    al = EchoAligner(probe)
    for i in range(probe.frames):
        al.sent(i, 0.02 * i)
    al.advance()
    assert al.result().frames_pending == 50 and al.result().frames_lost == 0
    al.advance(final=True)
    r = al.result()
    assert r.frames_pending == 0 and r.frames_lost == 50 and r.tone_snr_db is None


def test_frames_not_sent_are_neither_sent_nor_lost():
    probe = make_probe(2.0, 0.0, seed=9)
    al = EchoAligner(probe)
    for i in range(40):  # the call ended after 40 frames
        al.sent(i, 0.02 * i)
    for j, chunk in enumerate(_frames(probe.ulaw)[:40]):
        al.heard(chunk, 0.02 * j + 0.001)
    al.advance(final=True)
    r = al.result()
    assert (r.frames_sent, r.frames_matched, r.frames_lost) == (40, 40, 0)


def test_incremental_advance_equals_one_final_pass():
    probe = make_probe(3.0, 0.2, seed=10)
    out = ulaw_encode(_lowpass_delay(probe.linear).tobytes())
    frames = [f for i, f in enumerate(_frames(out)) if i != 77]
    once = _align(probe, frames)
    stepped = _align(probe, frames, step=7)
    assert once.result() == stepped.result()
    assert once.latencies == stepped.latencies


def test_rechunked_audio_latency_is_the_same_for_every_frame():
    probe = make_probe(1.0, 0.0, seed=11)
    al = EchoAligner(probe)
    for i in range(probe.frames):
        al.sent(i, 0.02 * i)
    # the bridge sends 40 ms chunks: frame 2k and 2k+1 both arrive with chunk k
    for j in range(0, len(probe.ulaw), 2 * F):
        al.heard(probe.ulaw[j : j + 2 * F], 0.02 * (j // F + 1) + 0.003)
    al.advance(final=True)
    assert al.result().frames_matched == 50
    lat = np.array(al.latencies)
    # the first frame waited 20 ms for its chunk-mate; the second plays 20 ms into the chunk
    assert np.allclose(lat, 0.023)


@settings(max_examples=25, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=99), max_size=30))
def test_every_dropped_frame_is_counted_lost(dropped: set[int]):
    probe = make_probe(2.0, 0.0, seed=12)
    kept = [f for i, f in enumerate(_frames(probe.ulaw)) if i not in dropped]
    # the caller's silent tail comes back after the probe, so a dropped last frame is
    # known to be lost, not merely late
    tail = [ulaw_encode(bytes(2 * F))] * 30
    r = _align(probe, kept + tail).result()
    assert r.frames_lost == len(dropped) and r.frames_unheard == 0
    assert r.frames_matched + r.frames_lost == r.frames_sent == 100


def test_frames_sent_in_batches_count_as_sent_one_by_one():
    probe = make_probe(1.0, 0.2, seed=12)
    frames = _frames(probe.ulaw)
    one = _align(probe, frames)
    batched = EchoAligner(probe)
    order = list(range(probe.frames))
    order[3], order[4] = order[4], order[3]  # out of order within a batch: still all sent
    for a in range(0, probe.frames, 9):
        part = order[a : a + 9]
        # out-of-range frame numbers (not probe frames) are ignored
        batched.sent_many([*part, -1, probe.frames], [*(0.02 * i + 0.001 for i in part), 0, 0])
        assert batched.result().frames_sent == min(a + 9, probe.noise_frames)
    for j, chunk in enumerate(frames):
        batched.heard(chunk, 0.02 * j + 0.005)
    batched.advance(final=True)
    assert batched.result() == one.result() and batched.latencies == one.latencies
