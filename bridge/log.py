"""JSON-lines logging to stdout, with structured fields and no secrets.

Use ``log_event(logger, "call.started", call_sid=..., ...)``: one JSON object per line
with ``ts``, ``level``, ``logger``, ``event`` and the given fields.  Audio payloads and
credentials must never be passed as fields.

Every value is bounded when the line is written (:func:`bound`): field values often come
from the network (a ``CallSid``, a signed URL, a custom parameter), and a 2 MB one must
not become a 2 MB line.  Strings longer than :data:`MAX_FIELD_CHARS` are cut with a
marker saying how much was dropped; lists and mappings keep :data:`MAX_ITEMS` items and
:data:`MAX_DEPTH` levels.  The deliberate exception: :data:`LONG_FIELDS` are ours and
long by nature (a crashed task's traceback), bounded at :data:`MAX_LONG_FIELD_CHARS`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

_FIELDS = "bridge_fields"

MAX_FIELD_CHARS = 512  # any string value, and str() of any other value
MAX_LONG_FIELD_CHARS = 16 * 1024  # LONG_FIELDS, the message and an exception's text
MAX_ITEMS = 32  # items kept of a list or mapping
MAX_DEPTH = 4  # nesting levels kept below a field
# Fields we fill ourselves with long text (never a network value as a whole).
LONG_FIELDS = frozenset({"traceback"})


def _cut(text: str, limit: int) -> str:
    return f"{text[:limit]}…[{len(text) - limit} chars cut]"


def bound(value: Any, limit: int = MAX_FIELD_CHARS, depth: int = 0) -> Any:
    """``value`` as JSON-ready data of bounded size (see the module docstring)."""
    cls = type(value)
    if cls is str:
        return value if len(value) <= limit else _cut(value, limit)
    if value is None or cls is bool or cls is int or cls is float:
        return value
    if isinstance(value, (int, float)):  # an IntEnum, a numpy scalar: still a number
        return value
    if depth >= MAX_DEPTH:
        return "…[nested too deep]"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i == MAX_ITEMS:
                out["…"] = f"[{len(value) - MAX_ITEMS} more items]"
                break
            out[bound(k if type(k) is str else str(k))] = bound(v, limit, depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [bound(v, limit, depth + 1) for v in list(value)[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"…[{len(value) - MAX_ITEMS} more items]")
        return items
    text = str(value)  # an enum, an exception, a path: its text, bounded like a string
    return text if len(text) <= limit else _cut(text, limit)


class JsonFormatter(logging.Formatter):
    def __init__(self, context: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        # Fields on every line of this process (a worker's index under --workers N).
        self.context = dict(context or {})

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            # A library's message may quote a request: bounded too, but generously.
            "event": bound(record.getMessage(), MAX_LONG_FIELD_CHARS),
            **self.context,
        }
        fields = getattr(record, _FIELDS, None)
        if fields:
            for key, value in fields.items():
                out[key] = bound(
                    value, MAX_LONG_FIELD_CHARS if key in LONG_FIELDS else MAX_FIELD_CHARS
                )
        if record.exc_info:
            out["exc"] = bound(self.formatException(record.exc_info), MAX_LONG_FIELD_CHARS)
        return json.dumps(out, default=str, separators=(",", ":"))


# Libraries that log wire detail: httpx every request URL at INFO, websockets the
# request line at DEBUG (a signed URL's token) and every frame (audio), httpcore and
# twilio their requests.  URLs can carry tokens and frames carry audio, and all of it
# would drown the call events: only their warnings come through, at any bridge level.
QUIET_LIBRARIES = ("httpx", "httpcore", "websockets", "twilio", "aiohttp", "hpack")


def configure_logging(
    level: str = "info", stream: Any = None, context: Mapping[str, Any] | None = None
) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(context))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.Formatter.converter = time.gmtime


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event; cheap when the level is disabled."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS: fields})
