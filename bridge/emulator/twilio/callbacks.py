"""Callbacks Twilio sends about a call, fired in the background as Twilio does.

A slow or failing callback endpoint never holds up the call: each request runs in its
own task, and its outcome (HTTP status or error) is recorded as a
:class:`~.records.CallbackRecord`.  ``drain()`` waits for the stragglers at the end.
Call status callbacks carry ``SequenceNumber`` (0, 1, 2 … per call), ``Timestamp``
(RFC 2822) and ``CallbackSource=call-progress-events`` as Twilio sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from bridge.emulator.twilio.clock import CallClock
from bridge.emulator.twilio.records import CallbackRecord
from bridge.emulator.twilio.webhook import UrlMap, rfc2822, signed_request
from bridge.log import log_event

log = logging.getLogger("bridge.emulator.twilio")

STATUS_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})
CALLBACK_TIMEOUT_S = 10.0


class Callbacks:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        clock: CallClock,
        auth_token: str | None,
        url_map: UrlMap,
        records: list[CallbackRecord],
    ) -> None:
        self.http = http
        self.clock = clock
        self.auth_token = auth_token
        self.url_map = url_map
        self.records = records
        self._status_seq = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def status(self, url: str, method: str, event: str, params: dict[str, str]) -> None:
        """A call-progress callback (``initiated`` … ``completed``)."""
        params = {
            **params,
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(self._status_seq),
            "Timestamp": rfc2822(time.time()),
        }
        self._status_seq += 1
        self.fire("status", event, url, method, params)

    def fire(self, kind: str, event: str, url: str, method: str, params: dict[str, str]) -> None:
        task = asyncio.create_task(self._send(kind, event, url, method, params))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float = CALLBACK_TIMEOUT_S) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _send(
        self, kind: str, event: str, url: str, method: str, params: dict[str, str]
    ) -> None:
        t = self.clock.now()
        req = signed_request(method, url, params, self.auth_token)
        status: int | None = None
        error: str | None = None
        try:
            resp = await self.http.request(
                req.method,
                self.url_map.reach(req.url),
                data=req.form or None,
                headers=req.headers,
                timeout=CALLBACK_TIMEOUT_S,
            )
            status = resp.status_code
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        self.records.append(CallbackRecord(t, kind, event, url, status, error))
        if error or (status is not None and status >= 400):
            # Twilio logs these as debugger warnings (15003) and carries on.
            log_event(
                log,
                "twilio_emulator.callback_failed",
                logging.WARNING,
                kind=kind,
                callback_event=event,
                url=url,
                status=status,
                error=error,
            )
