"""TwiML the bridge answers with, built by ``twilio.twiml`` (never by string formatting).

Pure functions: arguments in, an XML document (``str``) out.  Served as ``text/xml``.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

TWIML_CONTENT_TYPE = "text/xml"


def connect_stream(
    stream_url: str,
    parameters: Mapping[str, str],
    *,
    action_url: str | None = None,
    status_callback: str | None = None,
    notice: str | None = None,
) -> str:
    """``<Connect><Stream>``: the bidirectional media stream of one call.

    Call context travels as ``<Parameter>``s (Twilio hands them over in the stream's
    ``start`` message); the stream URL carries no query string.  Twilio requests
    ``action_url`` when the stream ends, and runs the TwiML it gets back.  ``notice``
    is said first (a recording notice): the stream, and so the agent, starts after it.
    """
    response = VoiceResponse()
    if notice:
        response.say(notice)
    connect = Connect(action=action_url, method="POST" if action_url else None)
    stream = connect.stream(
        url=stream_url,
        status_callback=status_callback,
        status_callback_method="POST" if status_callback else None,
    )
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def hangup() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def say_and_hangup(text: str, *, language: str | None = None) -> str:
    """A spoken message, then the end of the call (apologies, busy messages)."""
    response = VoiceResponse()
    response.say(text, language=language)
    response.hangup()
    return str(response)


def dial(target: str, *, caller_id: str | None = None, timeout_s: int | None = None) -> str:
    """Bridge the caller to ``target``: an E.164 number or a ``sip:`` URI."""
    response = VoiceResponse()
    d = Dial(caller_id=caller_id, timeout=timeout_s)
    if target.startswith("sip:"):
        d.sip(target)
    else:
        d.number(target)
    response.append(d)
    return str(response)


def reject(reason: str = "busy") -> str:
    """Refuse the call before answering it (``busy`` or ``rejected``): no charge."""
    response = VoiceResponse()
    response.reject(reason=reason)
    return str(response)
