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


def configure_logging(level: str = "info", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; request URLs can carry tokens (signed URLs)
    # and would drown the call events, so only its warnings come through.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.Formatter.converter = time.gmtime


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event; cheap when the level is disabled."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS: fields})
