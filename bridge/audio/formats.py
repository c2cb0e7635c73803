"""The audio formats an agent may speak or hear, by their Agents Platform names.

``ulaw_8000`` is G.711 mu-law at 8 kHz (what Twilio Media Streams carries); every
``pcm_<rate>`` is 16-bit little-endian mono PCM at that rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bridge.errors import AudioFormatError


@dataclass(frozen=True)
class AudioFormat:
    """One wire audio format: encoding, sample rate and bytes per sample (mono)."""

    name: str
    encoding: Literal["ulaw", "pcm"]
    sample_rate: int
    sample_width: int

    @property
    def bytes_per_20ms(self) -> int:
        """Bytes in one 20 ms frame (Twilio's frame length): 160 for ulaw_8000."""
        return self.sample_rate * self.sample_width // 50

    def __str__(self) -> str:
        return self.name


ULAW_8000 = AudioFormat("ulaw_8000", "ulaw", 8000, 1)
PCM_8000 = AudioFormat("pcm_8000", "pcm", 8000, 2)
PCM_16000 = AudioFormat("pcm_16000", "pcm", 16000, 2)
PCM_22050 = AudioFormat("pcm_22050", "pcm", 22050, 2)
PCM_24000 = AudioFormat("pcm_24000", "pcm", 24000, 2)
PCM_44100 = AudioFormat("pcm_44100", "pcm", 44100, 2)
PCM_48000 = AudioFormat("pcm_48000", "pcm", 48000, 2)

_BY_NAME = {
    f.name: f for f in (ULAW_8000, PCM_8000, PCM_16000, PCM_22050, PCM_24000, PCM_44100, PCM_48000)
}
FORMATS: tuple[str, ...] = tuple(_BY_NAME)
"""Every format name the bridge accepts, in the platform's order."""


def parse_format(name: str) -> AudioFormat:
    """The :class:`AudioFormat` called ``name``; :class:`AudioFormatError` if unknown."""
    fmt = _BY_NAME.get(name) if isinstance(name, str) else None
    if fmt is None:
        raise AudioFormatError(
            f"unknown audio format {name!r}; expected one of: {', '.join(FORMATS)}"
        )
    return fmt
