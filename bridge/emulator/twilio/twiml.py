"""TwiML as Twilio reads it: XML text in, typed verbs out (pure: no I/O).

Only the voice verbs a bridge answers with are modelled (``Connect/Stream``, ``Say``,
``Play``, ``Pause``, ``Dial``, ``Reject``, ``Hangup``, ``Redirect``).  Any other element
under ``<Response>`` becomes :class:`Unsupported`: the interpreter reports it and moves
on, so a test can see that the bridge answered with something the emulator does not act
out (``Gather``, ``Record`` …) instead of the call silently doing nothing.

What would make Twilio fail the call with its "application error" (12100 document
parse failure) raises :class:`~bridge.errors.TwimlError`: not XML, a DTD, a root other
than ``<Response>``, a ``<Stream>`` without ``url``, a ``<Redirect>`` without a URL,
more than 64 KB.  Things Twilio accepts but that are likely mistakes (``ws://`` stream
URLs, a query string on the stream URL, over-long ``<Parameter>`` pairs) are returned as
``warnings`` next to the verbs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bridge.errors import TwimlError

MAX_TWIML_BYTES = 64 * 1024


@dataclass(frozen=True)
class Say:
    text: str
    voice: str | None = None
    language: str | None = None
    loop: int = 1


@dataclass(frozen=True)
class Play:
    url: str
    loop: int = 1
    digits: str | None = None


@dataclass(frozen=True)
class Pause:
    length: float = 1.0


@dataclass(frozen=True)
class Stream:
    url: str
    name: str | None = None
    track: str = "inbound_track"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def custom_parameters(self) -> dict[str, str]:
        """What arrives in ``start.customParameters`` (a later duplicate name wins)."""
        return dict(self.parameters)


@dataclass(frozen=True)
class Connect:
    stream: Stream | None
    action: str | None = None
    method: str = "POST"


@dataclass(frozen=True)
class DialTarget:
    kind: str  # number | sip | client | conference | queue | plain
    value: str


@dataclass(frozen=True)
class Dial:
    targets: tuple[DialTarget, ...]
    action: str | None = None
    method: str = "POST"
    caller_id: str | None = None
    timeout: int = 30

    @property
    def target(self) -> str:
        """The first target's address, as a transfer destination to report."""
        return self.targets[0].value if self.targets else ""


@dataclass(frozen=True)
class Reject:
    reason: str = "rejected"  # rejected | busy


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Redirect:
    url: str
    method: str = "POST"


@dataclass(frozen=True)
class Unsupported:
    name: str


Verb = Say | Play | Pause | Connect | Dial | Reject | Hangup | Redirect | Unsupported


@dataclass(frozen=True)
class Document:
    verbs: tuple[Verb, ...]
    warnings: tuple[str, ...] = field(default=())


_DIAL_NOUNS = {"Number": "number", "Sip": "sip", "Client": "client"}
_DIAL_NOUNS |= {"Conference": "conference", "Queue": "queue"}


def parse_twiml(text: str | bytes) -> Document:
    """Parse a TwiML document; raises TwimlError where Twilio would fail the call."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_TWIML_BYTES:
        raise TwimlError(f"TwiML is {len(raw)} bytes; Twilio accepts at most {MAX_TWIML_BYTES}")
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise TwimlError("TwiML must not contain a DTD or entity declarations")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as e:
        raise TwimlError(f"expected an XML document, parse failed: {e}") from None
    if root.tag != "Response":
        raise TwimlError(f"expected root element <Response>, got <{root.tag[:40]}>")
    warnings: list[str] = []
    verbs = tuple(_verb(el, warnings) for el in root)
    return Document(verbs, tuple(warnings))


def _text(el: ET.Element) -> str:
    return (el.text or "").strip()


def _int(el: ET.Element, name: str, default: int) -> int:
    raw = el.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise TwimlError(f"<{el.tag} {name}>: expected an integer, got {raw[:20]!r}") from None


def _method(el: ET.Element, name: str = "method") -> str:
    m = (el.get(name) or "POST").upper()
    if m not in ("GET", "POST"):
        raise TwimlError(f"<{el.tag} {name}>: expected GET or POST, got {m[:10]!r}")
    return m


def _verb(el: ET.Element, warnings: list[str]) -> Verb:
    tag = el.tag
    if tag == "Say":
        return Say(_text(el), el.get("voice"), el.get("language"), _int(el, "loop", 1))
    if tag == "Play":
        return Play(_text(el), _int(el, "loop", 1), el.get("digits"))
    if tag == "Pause":
        return Pause(float(_int(el, "length", 1)))
    if tag == "Connect":
        return _connect(el, warnings)
    if tag == "Dial":
        return _dial(el)
    if tag == "Reject":
        reason = el.get("reason", "rejected")
        if reason not in ("rejected", "busy"):
            raise TwimlError(f"<Reject reason>: expected rejected or busy, got {reason[:20]!r}")
        return Reject(reason)
    if tag == "Hangup":
        return Hangup()
    if tag == "Redirect":
        url = _text(el)
        if not url:
            raise TwimlError("<Redirect> needs a URL as its text")
        return Redirect(url, _method(el))
    return Unsupported(tag)


def _connect(el: ET.Element, warnings: list[str]) -> Connect:
    stream: Stream | None = None
    for child in el:
        if child.tag != "Stream":
            warnings.append(f"<Connect><{child.tag}> is not emulated")
            continue
        if stream is not None:
            raise TwimlError("<Connect> holds more than one <Stream>")
        stream = _stream(child, warnings)
    return Connect(stream, el.get("action"), _method(el))


def _stream(el: ET.Element, warnings: list[str]) -> Stream:
    url = el.get("url")
    if not url:
        raise TwimlError("<Stream> needs a url attribute")
    parts = urlsplit(url)
    if parts.scheme not in ("wss", "ws") or not parts.netloc:
        raise TwimlError(f"<Stream url>: expected a wss:// URL, got {url[:80]!r}")
    if parts.scheme == "ws":
        warnings.append("<Stream url> uses ws://; Twilio only connects to wss://")
    if parts.query:
        warnings.append("<Stream url> has a query string; use <Parameter> instead")
    params: list[tuple[str, str]] = []
    for p in el:
        if p.tag != "Parameter":
            warnings.append(f"<Stream><{p.tag}> is not a Stream noun")
            continue
        name, value = p.get("name"), p.get("value")
        if name is None or value is None:
            raise TwimlError("<Parameter> needs both name and value attributes")
        if len(name) + len(value) >= 500:
            warnings.append(f"<Parameter name={name[:30]!r}>: name+value over Twilio's 500 chars")
        params.append((name, value))
    return Stream(
        url=url,
        name=el.get("name"),
        track=el.get("track", "inbound_track"),
        status_callback=el.get("statusCallback"),
        status_callback_method=_method(el, "statusCallbackMethod"),
        parameters=tuple(params),
    )


def _dial(el: ET.Element) -> Dial:
    targets = [DialTarget(_DIAL_NOUNS[c.tag], _text(c)) for c in el if c.tag in _DIAL_NOUNS]
    if not targets and _text(el):
        targets = [DialTarget("plain", _text(el))]
    if not targets:
        raise TwimlError("<Dial> has no number, SIP address, client, conference or queue")
    return Dial(
        targets=tuple(targets),
        action=el.get("action"),
        method=_method(el),
        caller_id=el.get("callerId"),
        timeout=_int(el, "timeout", 30),
    )
