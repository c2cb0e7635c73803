"""The edge's limits, one immutable value per server."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config import ServerConfig


@dataclass(frozen=True)
class EdgeLimits:
    """Defaults are ``[server]``'s (bridge/config.py says why each is what it is)."""

    max_body_bytes: int = 64 * 1024
    max_header_bytes: int = 16 * 1024  # request line + headers + the blank line
    max_headers: int = 100
    request_head_timeout_s: float = 10.0
    keepalive_timeout_s: float = 5.0
    upgrade_timeout_s: float = 10.0
    max_connections: int = 1000  # 0 = no cap
    # After a refusal: how long we keep reading (and discarding) so the client gets our
    # answer instead of a reset from closing on unread data.
    linger_s: float = 1.0

    @classmethod
    def from_server(cls, server: ServerConfig) -> EdgeLimits:
        return cls(
            max_body_bytes=server.max_body_bytes,
            max_header_bytes=server.max_header_bytes,
            max_headers=server.max_headers,
            request_head_timeout_s=server.request_head_timeout_s,
            keepalive_timeout_s=server.keepalive_timeout_s,
            upgrade_timeout_s=server.upgrade_timeout_s,
            max_connections=server.max_connections,
            linger_s=min(1.0, server.request_head_timeout_s),
        )
