"""One call's recording, as the call driver feeds it (the adapter around the core).

The driver hands over what crosses the Twilio socket, as it crosses it:

* :meth:`CallRecording.caller_media` — every inbound ``media`` (the hot path);
* :meth:`CallRecording.sent` — the text frames written to Twilio in one write (agent
  audio as ``media`` frames, ``clear`` on a barge-in; marks are ignored);
* :meth:`CallRecording.end` — the stream is over (any way a call ends).

It times them with the local clock, feeds :class:`~bridge.recording.timeline.Recorder`
and appends the finished samples to the :class:`~bridge.recording.file.WavFile` once a
second (``FLUSH_S``).  A write error stops the recording, never the call: the error is
logged once at ERROR and counted in ``bridge_recording_errors_total{reason}``.
"""

from __future__ import annotations

import binascii
import errno
import logging
import re
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bridge.b64 import decode_strict
from bridge.log import log_event
from bridge.metrics import Metrics
from bridge.recording.file import WavFile
from bridge.recording.timeline import RATE, Recorder
from bridge.twilio import media as twilio

logger = logging.getLogger("bridge.recording")

FLUSH_S = 1.0
_MEDIA_PREFIX = '{"event":"media"'
_CLEAR_PREFIX = '{"event":"clear"'
_PAYLOAD_AT = '","media":{"payload":"'
_MAX_TS_DIGITS = 12  # as the Media Streams parser bounds sequence numbers
# Twilio call SIDs are CA + 32 hex digits; anything outside this never names a file.
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")


def recording_path(directory: Path, call_sid: str) -> Path | None:
    """Where ``call_sid``'s recording lives; None for a SID that cannot be a file name."""
    if not _SID.match(call_sid):
        return None
    return directory / f"{call_sid}.wav"


class CallRecording:
    def __init__(
        self,
        path: Path,
        *,
        call_sid: str,
        stream_sid: str,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open the file (raises OSError: the caller logs it and records nothing)."""
        self.path = path
        self.call_sid = call_sid
        self._metrics = metrics
        self._clock = clock
        now = clock()
        self._core = Recorder(now)
        self._file = WavFile(path)
        self._next_flush = now + FLUSH_S
        self._media_head = '{"event":"media","streamSid":"' + stream_sid + _PAYLOAD_AT
        self._reported = False
        self.ended = False

    @property
    def failed(self) -> OSError | None:
        return self._file.failed

    @property
    def recorder(self) -> Recorder:
        return self._core

    # ------------------------------------------------------------------ inputs

    def caller_media(self, media: twilio.MediaBody) -> None:
        if self.ended:
            return
        try:
            self._caller_media(media)
        except Exception as e:  # a recorder bug must not end the call
            self._crashed(e)

    def _caller_media(self, media: twilio.MediaBody) -> None:
        now = self._clock()
        ts = media.timestamp
        stamp = int(ts) if ts.isdigit() and len(ts) <= _MAX_TS_DIGITS else None
        try:
            ulaw = decode_strict(media.payload)
        except (binascii.Error, ValueError):
            return  # the session counts it as garbage; nothing to record
        self._core.caller(ulaw, stamp, now)
        if now >= self._next_flush:
            self._next_flush = now + FLUSH_S
            self._write(self._core.take(now))

    def sent(self, texts: list[str]) -> None:
        """Frames just written to Twilio, in order."""
        if self.ended:
            return
        try:
            self._sent(texts)
        except Exception as e:  # a recorder bug must not end the call
            self._crashed(e)

    def _sent(self, texts: list[str]) -> None:
        now = 0.0
        head = self._media_head
        for text in texts:
            if text.startswith(_MEDIA_PREFIX):
                if text.startswith(head):  # the hot path's own frame builder
                    payload = text[len(head) : -3]
                else:
                    msg = twilio.parse_from_server(text)
                    assert isinstance(msg, twilio.OutMedia)
                    payload = msg.media.payload
                now = now or self._clock()
                self._core.agent(decode_strict(payload), now)
            elif text.startswith(_CLEAR_PREFIX):
                now = now or self._clock()
                self._core.clear(now)

    def end(self) -> None:
        """The stream is over: write the rest, close the file (idempotent)."""
        if self.ended:
            return
        self.ended = True
        try:
            self._write(self._core.finish(self._clock()))
        except Exception as e:
            self._crashed(e)
        self._file.close()
        self._report()
        self._metrics.recordings_total.inc()
        core = self._core
        log_event(
            logger,
            "recording.finished",
            call_sid=self.call_sid,
            path=str(self.path),
            seconds=round(core.samples / RATE, 2),
            bytes=self._file.data_bytes,
            stopped_by=_reason(self.failed) if self.failed else None,
            agent_cut_s=round(core.agent_cleared / RATE, 2),
            agent_dropped_s=round(core.agent_dropped / RATE, 2) or None,
        )

    # ------------------------------------------------------------------ internals

    def _write(self, pcm: bytes) -> None:
        if pcm and self._file.open:
            self._file.write(pcm)
            self._report()

    def _crashed(self, e: Exception) -> None:
        """A bug in the recorder: stop this recording (file kept as written), once."""
        self._metrics.recording_errors_total.labels("bug").inc()
        log_event(
            logger,
            "recording.crashed",
            logging.ERROR,
            call_sid=self.call_sid,
            error=f"{type(e).__name__}: {e}",
            traceback="".join(traceback.format_exception(e)),
        )
        self.ended = True
        self._file.close()

    def _report(self) -> None:
        err = self._file.failed
        if err is None or self._reported:
            return
        self._reported = True
        reason = _reason(err)
        self._metrics.recording_errors_total.labels(reason).inc()
        log_event(
            logger,
            "recording.write_failed",
            logging.ERROR,
            call_sid=self.call_sid,
            path=str(self.path),
            reason=reason,
            error=str(err),
            kept_bytes=self._file.data_bytes,
            note="recording stopped; the call goes on",
        )


def _reason(e: OSError) -> str:
    return errno.errorcode.get(e.errno or 0, "other").lower()


def open_failed(metrics: Metrics, call_sid: str, path: Path, e: OSError) -> None:
    """A recording that could not even be created: counted and logged, the call goes on."""
    reason = _reason(e)
    metrics.recording_errors_total.labels(reason).inc()
    log_event(
        logger,
        "recording.open_failed",
        logging.ERROR,
        call_sid=call_sid,
        path=str(path),
        reason=reason,
        error=str(e),
        note="this call is not recorded; it goes on",
    )
