"""The audio core: formats, G.711, the streaming resampler and per-direction transcoders.

Pure code (bytes in, bytes out, no I/O), shared by the call path, the emulators and
the load generator.
"""

from __future__ import annotations

from bridge.audio.formats import FORMATS, ULAW_8000, AudioFormat, parse_format
from bridge.audio.g711 import ulaw_decode, ulaw_encode
from bridge.audio.resampler import StreamingResampler
from bridge.audio.transcoder import Transcoder, agent_to_caller, caller_to_agent

__all__ = [
    "FORMATS",
    "ULAW_8000",
    "AudioFormat",
    "StreamingResampler",
    "Transcoder",
    "agent_to_caller",
    "caller_to_agent",
    "parse_format",
    "ulaw_decode",
    "ulaw_encode",
]
