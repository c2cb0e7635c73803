"""What a ``call.ended`` document carries beyond the call record: read at enqueue time.

Transcript and per-turn latency are the record's own (``bridge.store.transcripts``, kept
with the call record when the call ends); the recording URL is the admin API's address
of the call's WAV file when one was written (``bridge.recording``).  Runs in the
dispatcher's worker thread, so the store read may block.
"""

from __future__ import annotations

from pathlib import Path

from bridge.recording.call import recording_path
from bridge.store import Store
from bridge.webhooks.payload import NO_EXTRAS, CallExtras, ExtrasProvider


def call_extras(store: Store, recordings: Path, public_url: str) -> ExtrasProvider:
    def extras(call_sid: str) -> CallExtras:
        rec = store.get_call(call_sid)
        if rec is None:
            return NO_EXTRAS
        path = recording_path(recordings, call_sid)
        recorded = path is not None and path.is_file()
        return CallExtras(
            transcript=rec.transcript or None,
            latency=rec.latency,
            recording_url=f"{public_url}/admin/calls/{call_sid}/recording" if recorded else None,
        )

    return extras
