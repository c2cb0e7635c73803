"""The operator console: web pages under ``/admin/ui`` over the admin service (docs/admin.md)."""

from bridge.console.routes import PREFIX, console_routes

__all__ = ["PREFIX", "console_routes"]
