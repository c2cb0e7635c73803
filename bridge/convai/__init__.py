"""The Agents Platform conversation WebSocket protocol (pure: no sockets)."""
