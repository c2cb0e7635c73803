"""The Agents Platform emulator (REST of the seeds + the conversation WebSocket).

Start here: :func:`create_platform_app` / :func:`platform_routes` (``app.py``), the state
(``state.py``), the per-conversation state machine (``conversation.py``) and the
behaviour config of emulated agents (``behaviour.py``).  See ``docs/emulator.md``.
"""

from __future__ import annotations

from bridge.emulator.platform.app import create_platform_app, platform_routes
from bridge.emulator.platform.conversation import ConversationTiming, EmulatedConversation
from bridge.emulator.platform.seeds import SEEDED_AGENTS
from bridge.emulator.platform.state import Fault, PlatformState

__all__ = [
    "SEEDED_AGENTS",
    "ConversationTiming",
    "EmulatedConversation",
    "Fault",
    "PlatformState",
    "create_platform_app",
    "platform_routes",
]
