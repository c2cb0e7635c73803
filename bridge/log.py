"""JSON-lines logging to stdout, with structured fields and no secrets.

Use ``log_event(logger, "call.started", call_sid=..., ...)``: one JSON object per line
with ``ts``, ``level``, ``logger``, ``event`` and the given fields.  Audio payloads and
credentials must never be passed as fields.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_FIELDS = "bridge_fields"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, _FIELDS, None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


# Libraries that log wire detail: httpx every request URL at INFO, websockets the
# request line at DEBUG (a signed URL's token) and every frame (audio), httpcore and
# twilio their requests.  URLs can carry tokens and frames carry audio, and all of it
# would drown the call events: only their warnings come through, at any bridge level.
QUIET_LIBRARIES = ("httpx", "httpcore", "websockets", "twilio", "aiohttp", "hpack")


def configure_logging(level: str = "info", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
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
