"""Assemble the platform emulator: REST routes, the conversation WebSocket, the
``/emulator/`` inspection routes.

``platform_routes(state, ...)`` gives the routes alone, so ``bridge emulator`` can mount
them next to the Twilio emulator's (``/2010-04-01/...``) in one Starlette app and
``bridge serve`` can run them in-process; ``create_platform_app`` wraps them in an app of
their own.  Nothing here needs a lifespan: the state is owned (and closed) by whoever
made it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute, WebSocketRoute

from bridge.emulator.platform.conversation import ConversationTiming
from bridge.emulator.platform.inspection import InspectionApi
from bridge.emulator.platform.rest import CONVERSATION_PATH, PlatformApi
from bridge.emulator.platform.state import PlatformState
from bridge.emulator.platform.ws import ConversationEndpoint


def platform_routes(
    state: PlatformState,
    *,
    api_key: str | None,
    public_ws_base: str | None = None,
    timing: ConversationTiming | None = None,
) -> list[BaseRoute]:
    """Every route of the emulated platform.

    ``api_key``: the value ``xi-api-key`` must have (``None``: any non-empty key).
    ``public_ws_base``: ``ws(s)://host[:port]`` put into signed URLs; by default the
    scheme and host the signed-URL request came in on.  ``timing``: ping interval, pong
    timeout and the other conversation clocks (tests shrink them).
    """
    conversation = ConversationEndpoint(state, api_key, timing or ConversationTiming())
    return [
        *PlatformApi(state, api_key, public_ws_base).routes(),
        WebSocketRoute(CONVERSATION_PATH, conversation.handle),
        *InspectionApi(state, api_key).routes(),
    ]


def create_platform_app(
    state: PlatformState | None = None,
    *,
    api_key: str | None,
    public_ws_base: str | None = None,
    timing: ConversationTiming | None = None,
) -> Starlette:
    """A Starlette app serving the emulated platform; ``app.state.platform`` is the state."""
    state = state if state is not None else PlatformState()
    app = Starlette(
        routes=platform_routes(state, api_key=api_key, public_ws_base=public_ws_base, timing=timing)
    )
    app.state.platform = state
    return app
