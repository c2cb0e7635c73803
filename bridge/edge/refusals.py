"""The bytes of the edge's own answers: complete HTTP/1.1 responses, then the close.

The body has the admin API's error shape (``{"error": {"field", "message"}}``,
bridge/admin/models.py), so a client of that API reads an edge refusal like any other
error; Twilio only looks at the status.
"""

from __future__ import annotations

import http
import json

from bridge.edge.scanner import Refusal


def response(status: int, field: str | None, message: str, *extra: tuple[str, str]) -> bytes:
    body = json.dumps({"error": {"field": field, "message": message}}).encode()
    phrase = http.HTTPStatus(status).phrase
    head = [
        f"HTTP/1.1 {status} {phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in extra),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


FOR_REFUSAL = {r: response(r.status, r.field, r.reason) for r in Refusal}
HEAD_TIMEOUT = response(408, None, "request head not received in time")
BUSY = response(503, None, "too many connections", ("retry-after", "1"))
