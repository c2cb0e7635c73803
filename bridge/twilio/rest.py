"""The bridge's Twilio REST actions: on a live call (hang up, replace its TwiML) and on
the account's incoming numbers (find, fetch, point at the bridge).

A thin adapter over the ``twilio`` package's async client (``AsyncTwilioHttpClient``),
pointed at ``twilio.api_base_url`` (the real API, or the Twilio emulator in tests).
Environment edge/region settings are ignored on purpose: they rewrite host names and
would mangle a loopback URL.

A call that is already gone (HTTP 404, Twilio code 20404) is not an error here: hanging
up a finished call has the wanted outcome.  Anything else raises
:class:`~bridge.errors.TwilioApiError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bridge.config import TwilioConfig
from bridge.errors import TwilioApiError

NOT_FOUND_CODE = 20404


@dataclass(frozen=True)
class IncomingNumber:
    """A Twilio IncomingPhoneNumber: where its calls and call-status events go."""

    sid: str
    phone_number: str
    voice_url: str | None
    voice_method: str | None
    status_callback: str | None
    status_callback_method: str | None

    @classmethod
    def of(cls, inst: Any) -> IncomingNumber:
        return cls(
            sid=inst.sid,
            phone_number=inst.phone_number,
            voice_url=inst.voice_url or None,
            voice_method=inst.voice_method or None,
            status_callback=inst.status_callback or None,
            status_callback_method=inst.status_callback_method or None,
        )


class TwilioRest:
    """Built with the app (no I/O, no event loop needed); its HTTP session is opened on
    the first request, from the running loop, and closed by :meth:`aclose`."""

    def __init__(
        self, account_sid: str, auth_token: str, base_url: str, *, timeout_s: float = 10.0
    ):
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._base_url = base_url.rstrip("/")
        self._http: AsyncTwilioHttpClient | None = None
        self._api: Client | None = None
        self._timeout_s = timeout_s

    @property
    def _client(self) -> Client:
        if self._api is None:  # aiohttp's session belongs to the loop that opens it
            self._http = AsyncTwilioHttpClient()
            self._api = Client(
                self._account_sid, self._auth_token, http_client=self._http, environment={}
            )
            self._api.api.base_url = self._base_url
        return self._api

    @classmethod
    def from_config(cls, cfg: TwilioConfig, *, timeout_s: float = 10.0) -> TwilioRest | None:
        """A client when credentials are configured, else None."""
        if not (cfg.account_sid and cfg.auth_token):
            return None
        return cls(cfg.account_sid, cfg.auth_token, cfg.api_base_url, timeout_s=timeout_s)

    async def hangup(self, call_sid: str) -> bool:
        """``Status=completed``; False when the call was already gone."""
        return await self._update(call_sid, status="completed")

    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        twiml: str,
        status_callback: str,
        status_callback_events: Sequence[str],
        timeout_s: int,
        machine_detection: str | None = None,
        amd_callback: str | None = None,
    ) -> str:
        """Place an outbound call that runs ``twiml`` when answered; returns its SID.

        Machine detection is asynchronous (``AsyncAmd``): the TwiML runs at once and
        the verdict is posted to ``amd_callback`` while the call goes on.
        """
        extra: dict[str, Any] = {}
        if machine_detection:
            extra = {
                "machine_detection": machine_detection,
                "async_amd": "true",
                "async_amd_status_callback": amd_callback,
                "async_amd_status_callback_method": "POST",
            }
        inst = await self._number_op(
            "call create",
            self._client.calls.create_async(
                to=to,
                from_=from_,
                twiml=twiml,
                status_callback=status_callback,
                status_callback_event=list(status_callback_events),
                status_callback_method="POST",
                timeout=timeout_s,
                **extra,
            ),
        )
        sid: str = inst.sid
        return sid

    async def redirect(self, call_sid: str, twiml: str) -> bool:
        """Replace the call's TwiML (ends a media stream; e.g. ``<Dial>`` to transfer)."""
        return await self._update(call_sid, twiml=twiml)

    async def _update(self, call_sid: str, **fields: str) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._client.calls(call_sid).update_async(**fields)
        except TwilioRestException as e:
            if e.status == 404 or e.code == NOT_FOUND_CODE:
                return False
            raise TwilioApiError(
                e.msg or "call update failed", status=e.status, code=e.code
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise TwilioApiError(f"call update failed: {type(e).__name__}: {e}") from None
        return True

    # -- incoming numbers (provisioning) ---------------------------------------------

    async def find_incoming_number(self, phone_number: str) -> IncomingNumber | None:
        """The account's number ``phone_number`` (E.164), or None if it has none."""
        found = await self._number_op(
            "number lookup",
            self._client.incoming_phone_numbers.list_async(phone_number=phone_number, limit=20),
        )
        # Twilio matches PhoneNumber as a pattern; keep only the exact number.
        exact = [IncomingNumber.of(n) for n in found if n.phone_number == phone_number]
        return exact[0] if exact else None

    async def get_incoming_number(self, sid: str) -> IncomingNumber | None:
        """The number with SID ``sid`` (PN...), or None if the account has none."""
        try:
            inst = await self._number_op(
                "number fetch", self._client.incoming_phone_numbers(sid).fetch_async()
            )
        except TwilioApiError as e:
            if e.status == 404 or e.code == NOT_FOUND_CODE:
                return None
            raise
        return IncomingNumber.of(inst)

    async def configure_incoming_number(
        self,
        sid: str,
        *,
        voice_url: str,
        status_callback: str,
        voice_method: str = "POST",
        status_callback_method: str = "POST",
    ) -> IncomingNumber:
        """Point the number's incoming calls and call-status callbacks at these URLs.

        An empty ``voice_url`` / ``status_callback`` clears it on Twilio's side.
        """
        inst = await self._number_op(
            "number update",
            self._client.incoming_phone_numbers(sid).update_async(
                voice_url=voice_url,
                voice_method=voice_method,
                status_callback=status_callback,
                status_callback_method=status_callback_method,
            ),
        )
        return IncomingNumber.of(inst)

    async def _number_op(self, what: str, op: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await op
        except TwilioRestException as e:
            raise TwilioApiError(e.msg or f"{what} failed", status=e.status, code=e.code) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise TwilioApiError(f"{what} failed: {type(e).__name__}: {e}") from None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
