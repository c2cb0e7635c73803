"""Per-direction transcoders between Twilio's 8 kHz mu-law and the agent's format.

A call has two: :func:`caller_to_agent` (Twilio media payloads -> the agent's input
format) and :func:`agent_to_caller` (the agent's output format -> Twilio payloads).
Each owns its resampler, so the two directions never share state.  When the agent
format is ``ulaw_8000`` the transcoder is a **passthrough**: payloads are returned
as the very same object, never decoded or re-encoded.

Both directions work on raw bytes (:meth:`Transcoder.process`) or on the base64
wire form (:meth:`Transcoder.process_b64`).  PCM input with an odd byte count is fine:
the dangling byte waits for the next chunk.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable

from bridge.audio.formats import ULAW_8000, AudioFormat
from bridge.audio.g711 import ulaw_decode, ulaw_encode
from bridge.audio.resampler import StreamingResampler
from bridge.b64 import decode_strict
from bridge.errors import AudioFormatError


class Transcoder:
    """One direction of one call: bytes (or base64) in, bytes (or base64) out."""

    def __init__(self, source: AudioFormat, target: AudioFormat) -> None:
        self.source = source
        self.target = target
        self.passthrough = source == target and source.encoding == "ulaw"
        if not self.passthrough and ULAW_8000 not in (source, target):
            raise AudioFormatError(
                f"no transcoder {source} -> {target}: one side must be ulaw_8000"
            )
        self._resampler = StreamingResampler(source.sample_rate, target.sample_rate)
        self._decode: Callable[[bytes], bytes] | None = (
            ulaw_decode if source.encoding == "ulaw" and not self.passthrough else None
        )
        self._encode: Callable[[bytes], bytes] | None = (
            ulaw_encode if target.encoding == "ulaw" and not self.passthrough else None
        )

    @property
    def delay_ms(self) -> float:
        """Algorithmic delay this direction adds (0 for passthrough and pcm_8000)."""
        return 0.0 if self.passthrough else self._resampler.delay_ms

    def process(self, data: bytes) -> bytes:
        """Transcode one chunk of raw audio; may return fewer (or no) bytes."""
        if self.passthrough:
            return data
        pcm = self._decode(data) if self._decode else data
        out = self._resampler.process(pcm)
        return self._encode(out) if self._encode else out

    def process_b64(self, payload_b64: str) -> str:
        """Transcode one base64 payload (the JSON wire form); passthrough returns it as is.

        Raises :class:`AudioFormatError` when the payload is not valid base64.
        """
        if self.passthrough:
            return payload_b64
        try:
            data = decode_strict(payload_b64)
        except (binascii.Error, ValueError) as exc:
            raise AudioFormatError(
                f"{self.source} payload is not valid base64 ({len(payload_b64)} chars): {exc}"
            ) from None
        return binascii.b2a_base64(self.process(data), newline=False).decode("ascii")

    def flush(self) -> bytes:
        """The held-back tail (about 2 x delay_ms of audio), as if silence followed."""
        if self.passthrough:
            return b""
        out = self._resampler.flush()
        return self._encode(out) if self._encode and out else out

    def reset(self) -> None:
        """Drop all buffered audio and filter state (barge-in)."""
        if not self.passthrough:
            self._resampler.reset()

    def __repr__(self) -> str:
        mode = "passthrough" if self.passthrough else f"delay {self.delay_ms:.1f} ms"
        return f"Transcoder({self.source} -> {self.target}, {mode})"


def caller_to_agent(agent_input: AudioFormat) -> Transcoder:
    """Twilio mu-law 8 kHz -> the agent's ``user_input_audio_format``."""
    return Transcoder(ULAW_8000, agent_input)


def agent_to_caller(agent_output: AudioFormat) -> Transcoder:
    """The agent's ``agent_output_audio_format`` -> Twilio mu-law 8 kHz."""
    return Transcoder(agent_output, ULAW_8000)
