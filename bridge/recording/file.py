"""One recording on disk: a WAV file appended to as the call goes (the I/O adapter).

Crash safety: the header's sizes are rewritten (``pwrite`` at offset 0) after every
append, data first, so at any moment the file is a valid WAV of everything appended up
to the last flush; a process killed mid-call leaves a playable file missing at most
the audio since the last flush (one second).  A header that lags its data is still
valid: readers stop at the size it states.

Any ``OSError`` (a full disk, a file-size limit, a yanked volume) stops this file: the
header is patched to what was written (best effort) and the descriptor closed; the
error is kept in :attr:`failed` for the caller to log and count once.  Nothing here
raises an ``OSError`` after the file is open.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from bridge.recording.wav import wav_header

FRAME_BYTES = 4  # one stereo 16-bit sample


class WavFile:
    def __init__(self, path: Path) -> None:
        """Create ``path`` (its directory too); raises OSError when that fails."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.data_bytes = 0  # audio bytes known to be on disk
        self.failed: OSError | None = None
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        self._append(wav_header(0), audio=False)
        if self.failed is not None:
            raise self.failed

    @property
    def open(self) -> bool:
        return self._fd is not None

    def write(self, pcm: bytes) -> None:
        """Append stereo PCM and patch the header; on OSError the file stops."""
        if self._fd is None or not pcm:
            return
        if self._append(pcm, audio=True):
            self._patch()

    def close(self) -> None:
        """Patch the header to what is on disk and close (idempotent)."""
        if self._fd is None:
            return
        self._patch()
        self._release()

    # ------------------------------------------------------------------ internals

    def _append(self, data: bytes, *, audio: bool) -> bool:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                if n <= 0:  # never for a regular file; do not spin if it happens
                    raise OSError(errno.EIO, "write wrote nothing")
                view = view[n:]
                if audio:
                    self.data_bytes += n
        except OSError as e:
            self._fail(e)
            return False
        return True

    def _patch(self) -> None:
        assert self._fd is not None
        whole = self.data_bytes - self.data_bytes % FRAME_BYTES  # a cut frame is not audio
        try:
            os.pwrite(self._fd, wav_header(whole), 0)
        except OSError as e:
            self._fail(e)

    def _fail(self, e: OSError) -> None:
        if self.failed is None:
            self.failed = e
        if self._fd is not None:
            # Best effort: the header over what did reach the disk (the header is
            # rewritten in place, it needs no new space).
            whole = self.data_bytes - self.data_bytes % FRAME_BYTES
            with contextlib.suppress(OSError):
                os.pwrite(self._fd, wav_header(whole), 0)
            self._release()

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError as e:  # e.g. NFS reporting a failed write at close
                if self.failed is None:
                    self.failed = e
