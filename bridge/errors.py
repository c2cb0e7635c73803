"""The one error hierarchy of the bridge.

Every error the bridge raises on purpose derives from :class:`BridgeError`, so an
adapter (HTTP endpoint, WebSocket loop, CLI) can catch one type and turn it into a
specific outcome: a close code, a 4xx body, an exit status.  Messages say what was
expected and what came, never a secret.

    BridgeError
    ├── ConfigError            bad configuration; names the key (start-up fails)
    ├── AudioFormatError       unknown audio format string or unusable audio bytes
    ├── ProtocolError          a peer sent something the wire protocol does not allow
    │   ├── TwilioProtocolError    Twilio Media Streams frame (caller side)
    │   ├── ConvaiProtocolError    Agents Platform conversation frame (agent side)
    │   └── TwimlError             TwiML Twilio would reject (the Twilio emulator reads it)
    ├── UpstreamError          an HTTP API we call failed (status, message, request id)
    │   ├── PlatformApiError       Agents Platform REST
    │   └── TwilioApiError         Twilio REST
    ├── InputError             a request to our own API is invalid (names the field)
    ├── StoreError             the local SQLite store failed
    └── PartialFailure         a multi-step admin operation failed part way (what was undone)
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every deliberate bridge error."""


class ConfigError(BridgeError):
    """A configuration value is missing or invalid.

    ``key`` is the dotted config key (``server.port``); the message names the key,
    the problem and the expected form, on one line.
    """

    def __init__(self, key: str, problem: str, expected: str, source: str | None = None):
        self.key = key
        self.problem = problem
        self.expected = expected
        self.source = source
        where = f" (from {source})" if source else ""
        super().__init__(f"config {key}{where}: {problem}; expected {expected}")


class AudioFormatError(BridgeError):
    """An audio format name we do not know, or audio bytes that do not fit the format."""


class ProtocolError(BridgeError):
    """A peer broke its wire protocol. ``detail`` says what was expected and what came."""

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(detail)


class TwilioProtocolError(ProtocolError):
    """A Twilio Media Streams frame that cannot be accepted."""


class ConvaiProtocolError(ProtocolError):
    """An Agents Platform conversation frame that cannot be accepted."""


class TwimlError(ProtocolError):
    """A TwiML document Twilio would fail the call on (its error 12100)."""


class UpstreamError(BridgeError):
    """An upstream HTTP API answered with an error or could not be reached.

    ``status`` is the HTTP status (``None`` when no response arrived), ``message`` the
    upstream's own words, ``request_id`` the upstream request id when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        code: int | str | None = None,
    ):
        self.message = message
        self.status = status
        self.request_id = request_id
        self.code = code
        parts = [f"HTTP {status}" if status is not None else "no response"]
        if code is not None:
            parts.append(f"code {code}")
        if request_id:
            parts.append(f"request {request_id}")
        super().__init__(f"{message} ({', '.join(parts)})")


class PlatformApiError(UpstreamError):
    """The Agents Platform REST API failed.

    ``detail`` is the ``detail`` member of the error body exactly as the platform sent it
    (for a 422, the list of ``{loc, msg, type}`` validation errors), for showing verbatim.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        code: int | str | None = None,
        detail: object = None,
    ):
        super().__init__(message, status=status, request_id=request_id, code=code)
        self.detail = detail


class TwilioApiError(UpstreamError):
    """The Twilio REST API failed."""


class InputError(BridgeError):
    """A request to one of our own endpoints is invalid; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str, status: int = 422):
        self.field = field
        self.problem = problem
        self.status = status
        super().__init__(f"{field}: {problem}")


class StoreError(BridgeError):
    """The SQLite store could not be read or written."""


class PartialFailure(BridgeError):
    """A multi-step operation (e.g. importing a number) failed at one step.

    ``cause`` is the step's own error; the steps done before it were undone in reverse
    order (``undone``), except those whose undo failed too (``left_done``), so the
    caller knows exactly what state remains.
    """

    def __init__(self, step: str, cause: BridgeError, undone: list[str], left_done: list[str]):
        self.step = step
        self.cause = cause
        self.undone = undone
        self.left_done = left_done
        tail = f"; still done: {', '.join(left_done)}" if left_done else ""
        super().__init__(f"{step} failed: {cause}; undone: {', '.join(undone) or 'nothing'}{tail}")
