"""Opening the agent conversation WebSocket (the ``websockets`` client adapter).

:class:`AgentConnector` turns an agent id into an open socket:

* no API key configured: the public URL ``{ws_base}/v1/convai/conversation?agent_id=…``;
* an API key configured: a signed URL fetched from the platform REST API (the callable
  given as ``signed_url``), treated as opaque.  The key stays between the bridge and
  the platform: it is never in a URL, a log line or anything Twilio sees.

Every failure to open (DNS, refused, TLS, HTTP status instead of 101, timeout, the
signed-URL request failing) raises :class:`~bridge.errors.PlatformApiError` whose
message says which step failed, so the call can take its fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from bridge.errors import PlatformApiError
from bridge.ws.client import ClientSocket, open_socket

CONVERSATION_PATH = "/v1/convai/conversation"
# WebSocket-level keepalive (as the websockets library's default): a dead path to the
# platform is noticed even while the agent is silent.
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0

SignedUrl = Callable[[str], Awaitable[str]]


class AgentConnector:
    def __init__(
        self,
        ws_base_url: str,
        *,
        signed_url: SignedUrl | None = None,
        open_timeout_s: float = 5.0,
        max_message_bytes: int = 1 << 20,
    ):
        self.ws_base_url = ws_base_url.rstrip("/")
        self._signed_url = signed_url
        self._open_timeout_s = open_timeout_s
        self._max_size = max_message_bytes

    @property
    def uses_signed_urls(self) -> bool:
        return self._signed_url is not None

    def public_url(self, agent_id: str) -> str:
        return f"{self.ws_base_url}{CONVERSATION_PATH}?agent_id={quote(agent_id, safe='')}"

    async def connect(self, agent_id: str) -> ClientSocket:
        """An open conversation socket for ``agent_id``; PlatformApiError if not."""
        if self._signed_url is not None:
            try:
                async with asyncio.timeout(self._open_timeout_s):
                    url = await self._signed_url(agent_id)
            except TimeoutError:
                raise PlatformApiError("signed URL request timed out") from None
        else:
            url = self.public_url(agent_id)
        try:
            # No permessage-deflate offered: base64 audio hardly compresses and deflate
            # would cost CPU on every frame.
            return await open_socket(
                url,
                open_timeout_s=self._open_timeout_s,
                max_size=self._max_size,
                user_agent="bridge",
                ping_interval_s=PING_INTERVAL_S,
                ping_timeout_s=PING_TIMEOUT_S,
                # As the platform REST client does (httpx reads the same variables).
                use_proxy=True,
            )
        except InvalidStatus as e:
            status = e.response.status_code
            raise PlatformApiError("conversation socket refused", status=status) from None
        except (InvalidURI, InvalidHandshake, OSError, TimeoutError) as e:
            # str(e) of these names the host at most; a signed URL's token is not echoed.
            kind = type(e).__name__
            raise PlatformApiError(f"conversation socket failed to open: {kind}") from None
