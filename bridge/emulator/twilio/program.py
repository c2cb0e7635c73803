"""What a caller experiences: TwiML verbs run one at a time, as Twilio runs them (pure).

:class:`Program` is the call's TwiML interpreter with the I/O taken out.  The adapter
asks ``next_action()`` and performs what comes back (record a ``<Say>``, wait out a
``<Pause>``, open a Media Stream, fetch the next document, end the call); when a fetch
returns, it hands the parsed document to ``load()``.  The rules it encodes:

* ``<Reject>`` as the first verb leaves the call unanswered (status ``busy`` for
  ``reason="busy"``, else ``no-answer``); any other verb answers it.
* ``<Connect><Stream>`` blocks until the stream ends; then ``action`` is fetched if
  given (the rest of the document is dropped), else the next verb runs.
* ``<Redirect>`` fetches a new document; ``<Hangup>`` and the end of the document end
  the call.  URLs are resolved against the URL of the document that holds them.
* ``<Dial>`` is reported as a transfer to its first target and ends the emulated call:
  the far leg is not emulated, so its ``action`` is not requested.
* More than ``max_documents`` fetches fails the call (a redirect loop).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urljoin

from bridge.emulator.twilio.twiml import (
    Connect,
    Dial,
    Document,
    Hangup,
    Pause,
    Play,
    Redirect,
    Reject,
    Say,
    Stream,
    Unsupported,
    Verb,
)


class Outcome(enum.Enum):
    """How the call ended, as the call's final ``CallStatus``-like word."""

    COMPLETED = "completed"
    REJECTED = "rejected"  # unanswered because the first verb was <Reject>
    BUSY = "busy"  # outbound callee busy
    NO_ANSWER = "no-answer"  # outbound callee never answered
    FAILED = "failed"  # webhook unreachable, bad TwiML, protocol error
    CANCELED = "canceled"  # ended (REST) before it was answered


@dataclass(frozen=True)
class Experience:
    """A verb the caller heard or sat through (``Say``, ``Play``, ``Pause``, ``Unsupported``)."""

    verb: Say | Play | Pause | Unsupported


@dataclass(frozen=True)
class OpenStream:
    stream: Stream
    connect: Connect


@dataclass(frozen=True)
class Fetch:
    url: str
    method: str
    why: str  # redirect | connect-action
    verb: Redirect | None = None


@dataclass(frozen=True)
class End:
    outcome: Outcome
    reason: str
    call_status: str  # the CallStatus Twilio would report at the end
    transfer_to: str | None = None
    verb: Reject | Dial | Hangup | None = None  # None: the document ran out, or a failure


Action = Experience | OpenStream | Fetch | End


class Program:
    """The TwiML interpreter of one call."""

    def __init__(self, document: Document, url: str, *, max_documents: int = 20) -> None:
        self.max_documents = max_documents
        self.documents = 0
        self.answered = False
        self._verbs: tuple[Verb, ...] = ()
        self._pc = 0
        self._url = url
        self._after_stream: Fetch | None = None
        self._ended: End | None = None
        self.load(document, url)

    def load(self, document: Document, url: str) -> None:
        """Run ``document`` (fetched from ``url``) from its first verb.

        Also how a REST update (``Twiml=``/``Url=``) takes over a live call: a pending
        ``<Connect action>`` is dropped, as Twilio drops it.
        """
        self.documents += 1
        self._after_stream = None
        self._verbs = document.verbs
        self._pc = 0
        self._url = url

    def fail(self, reason: str) -> End:
        """The adapter could not carry on (fetch failed, bad TwiML): the call fails."""
        self._ended = End(Outcome.FAILED, reason, "failed")
        return self._ended

    def next_action(self) -> Action:
        if self._ended is not None:
            return self._ended
        if self._after_stream is not None:
            fetch, self._after_stream = self._after_stream, None
            return self._fetch(fetch)
        if self._pc >= len(self._verbs):
            return self._end(Outcome.COMPLETED, "end of TwiML", "completed")
        verb = self._verbs[self._pc]
        self._pc += 1
        if isinstance(verb, Reject):
            if not self.answered:
                status = "busy" if verb.reason == "busy" else "no-answer"
                return self._end(Outcome.REJECTED, f"<Reject reason={verb.reason}>", status, verb)
            return self._end(Outcome.COMPLETED, f"<Reject reason={verb.reason}>", "completed", verb)
        self.answered = True
        if isinstance(verb, Say | Play | Pause | Unsupported):
            return Experience(verb)
        if isinstance(verb, Connect):
            if verb.stream is None:
                return Experience(Unsupported("Connect"))
            if verb.action:
                self._after_stream = Fetch(
                    urljoin(self._url, verb.action), verb.method, "connect-action"
                )
            return OpenStream(verb.stream, verb)
        if isinstance(verb, Redirect):
            return self._fetch(Fetch(urljoin(self._url, verb.url), verb.method, "redirect", verb))
        if isinstance(verb, Dial):
            return self._end(
                Outcome.COMPLETED, f"<Dial> {verb.target}", "completed", verb, verb.target
            )
        assert isinstance(verb, Hangup), verb
        return self._end(Outcome.COMPLETED, "<Hangup>", "completed", verb)

    def _fetch(self, fetch: Fetch) -> Action:
        if self.documents >= self.max_documents:
            return self.fail(f"more than {self.max_documents} TwiML documents (redirect loop?)")
        return fetch

    def _end(
        self,
        outcome: Outcome,
        reason: str,
        status: str,
        verb: Reject | Dial | Hangup | None = None,
        transfer_to: str | None = None,
    ) -> End:
        self._ended = End(outcome, reason, status, transfer_to, verb)
        return self._ended
