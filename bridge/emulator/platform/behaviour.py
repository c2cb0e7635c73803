"""What an emulated agent does: its behaviour config and the profile a conversation needs.

The behaviour lives in the agent itself, under ``conversation_config.agent.emulator``, so
a test creates an agent over REST (or through :class:`PlatformState`) with exactly the
behaviour it wants::

    {"mode": "echo", "greeting": true, "barge_in": true,
     "vad": {"threshold_dbfs": -40, "end_silence_ms": 500},
     "steps": [{"type": "play", "ms": 800, "text": "Transferring you"},
               {"type": "tool_call", "tool_name": "transfer_call",
                "parameters": {"number": "+14155550100"}},
               {"type": "end_call"}]}

``mode`` is how the agent reacts to the caller once the script (``steps``) is done:
``echo`` plays each caller utterance back (energy VAD, no speech recognition),
``loopback`` returns every audio chunk at once, ``silent`` never speaks.
``reply_delay_ms`` is the echo agent's response time: its reply starts that long after
the caller's speech ended (the end of the last speech frame, by its VAD), or as soon as
its VAD has decided the utterance is over if that takes longer (``vad.end_silence_ms``):
a known delay to measure the bridge's turn latency against.  Unknown keys are rejected
(422) so a typo cannot silently select a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from bridge.platform.agents import ConversationalConfig, OverrideSettings, PlatformSettings
from bridge.platform.common import DEFAULT_AUDIO_FORMAT

Ms = Annotated[int, msgspec.Meta(ge=0, le=600_000)]


class VadSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Energy VAD: a 20 ms frame is speech when its RMS level exceeds ``threshold_dbfs``."""

    threshold_dbfs: Annotated[float, msgspec.Meta(ge=-96, le=0)] = -40.0
    min_speech_ms: Annotated[int, msgspec.Meta(ge=20, le=5_000)] = 60
    end_silence_ms: Annotated[int, msgspec.Meta(ge=20, le=10_000)] = 500
    max_utterance_ms: Annotated[int, msgspec.Meta(ge=100, le=120_000)] = 30_000


class _Step(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="type"):
    pass


class PlayStep(_Step, tag="play"):
    """Speak a synthetic utterance of ``ms`` (shaped tones), with ``text`` as its agent_response."""

    ms: Ms
    text: str = ""


class WaitStep(_Step, tag="wait"):
    """Do nothing for ``ms`` of wall-clock time."""

    ms: Ms


class WaitPlayoutStep(_Step, tag="wait_playout"):
    """Wait until everything sent so far has played out at the caller (playout clock)."""


class ListenStep(_Step, tag="listen"):
    """Wait for the caller's next utterance to end (or ``timeout_ms``, if given)."""

    timeout_ms: Ms | None = None


class ToolCallStep(_Step, tag="tool_call"):
    """Send ``client_tool_call``; with ``wait_result`` wait for the matching result."""

    tool_name: str
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    wait_result: bool = True
    timeout_ms: Ms = 10_000


class EndCallStep(_Step, tag="end_call"):
    """Send ``agent_tool_response`` for ``end_call``, then close with 1000."""

    reason: str = "end_call"


class CloseStep(_Step, tag="close"):
    """Close the socket with ``code`` (default 1011: abnormal)."""

    code: Annotated[int, msgspec.Meta(ge=1000, le=4999)] = 1011
    reason: str = "scripted abnormal close"

    def __post_init__(self) -> None:
        # RFC 6455 7.4: 1004-1006 and 1015 are reserved, never sent; 1015-2999 unassigned.
        if not (1000 <= self.code <= 1003 or 1007 <= self.code <= 1014 or self.code >= 3000):
            raise ValueError(f"close code {self.code} cannot be sent in a close frame")


class RawStep(_Step, tag="raw"):
    """Send ``frames`` verbatim as text frames: fault injection (malformed JSON, wrong
    field types, unknown events) for testing what a client does with a broken platform."""

    frames: list[str]


class StallStep(_Step, tag="stall"):
    """Go silent: no more pings, audio or replies; the socket stays open until the client
    gives up (how a hung agent looks from the bridge)."""


Step = (
    PlayStep
    | WaitStep
    | WaitPlayoutStep
    | ListenStep
    | ToolCallStep
    | EndCallStep
    | CloseStep
    | RawStep
    | StallStep
)

Mode = Literal["echo", "loopback", "silent"]


class Behaviour(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mode: Mode = "echo"
    greeting: bool = True
    barge_in: bool = True
    capture_audio: bool = False
    reply_delay_ms: Ms = 0
    vad: VadSettings = msgspec.field(default_factory=VadSettings)
    steps: list[Step] = msgspec.field(default_factory=list)


def parse_behaviour(raw: dict[str, Any] | None) -> Behaviour:
    """Validate the ``emulator`` object; raises ``msgspec.ValidationError`` (path relative
    to the object) when it does not fit."""
    if raw is None:
        return Behaviour()
    return msgspec.convert(raw, Behaviour)


@dataclass(frozen=True)
class AgentProfile:
    """Everything a conversation needs from an agent, resolved once at connect time."""

    agent_id: str
    name: str
    input_format: str
    output_format: str
    first_message: str
    language: str
    prompt: str
    behaviour: Behaviour
    private: bool
    overrides: OverrideSettings
    first_message_interruptible: bool
    text_only: bool
    max_duration_s: float | None


def build_profile(
    agent_id: str,
    name: str,
    config: ConversationalConfig,
    platform_settings: PlatformSettings | None,
) -> AgentProfile:
    """Resolve an agent's effective settings, applying the platform's defaults."""
    asr = config.asr or None
    tts = config.tts or None
    agent = config.agent or None
    prompt = (agent.prompt or None) if agent else None
    conversation = config.conversation or None
    settings = platform_settings or PlatformSettings()
    auth = settings.auth or None

    def _str(v: Any, default: str) -> str:
        return v if isinstance(v, str) else default

    max_duration = conversation.max_duration_seconds if conversation else msgspec.UNSET
    return AgentProfile(
        agent_id=agent_id,
        name=name,
        input_format=_str(asr.user_input_audio_format if asr else None, DEFAULT_AUDIO_FORMAT),
        output_format=_str(tts.agent_output_audio_format if tts else None, DEFAULT_AUDIO_FORMAT),
        first_message=_str(agent.first_message if agent else None, ""),
        language=_str(agent.language if agent else None, "en"),
        prompt=_str(prompt.prompt if prompt else None, ""),
        behaviour=parse_behaviour(
            agent.emulator if agent and isinstance(agent.emulator, dict) else None
        ),
        private=bool(auth and auth.enable_auth is True),
        overrides=settings.overrides or OverrideSettings(),
        first_message_interruptible=not (
            agent and agent.disable_first_message_interruptions is True
        ),
        text_only=bool(conversation and conversation.text_only is True),
        max_duration_s=float(max_duration) if isinstance(max_duration, int) else None,
    )
