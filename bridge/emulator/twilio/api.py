"""HTTP face of the Twilio emulator: enough of ``/2010-04-01`` for the bridge, plus inspection.

REST (form-encoded requests, HTTP Basic ``AccountSid:AuthToken``, JSON shaped like
Twilio's; errors as ``{code, message, more_info, status}``):

* ``POST /2010-04-01/Accounts/{AC}/Calls.json`` — place an outbound call (a synthetic
  callee answers per its mode, see :mod:`.callee`); ``GET`` lists calls;
* ``GET|POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json`` — fetch; ``Status=completed``
  or ``canceled`` hangs up (``stop`` then close on an open stream); ``Twiml=``/``Url=``
  replaces the running TwiML (ends the stream, e.g. ``<Dial>`` for a transfer);
* ``GET|POST /2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json`` (``?PhoneNumber=``
  filter; ``POST`` adds a number) and ``GET|POST …/IncomingPhoneNumbers/{PN}.json``
  (``VoiceUrl``, ``VoiceMethod``, ``StatusCallback`` …).

Inspection and control, no auth (a loopback development tool), under ``/emulator/twilio``:
``GET /calls``, ``GET /calls/{CA}``, ``POST /calls`` (JSON ``{to, from, caller,
hangup_after_s}``: an inbound call to a number's ``VoiceUrl``), ``GET|PUT /callees``
(JSON ``{number, mode}`` or ``{default}``), ``POST /numbers`` (JSON ``{phone_number,
voice_url?, status_callback?}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.b64 import decode_strict
from bridge.emulator.twilio.callee import CalleeMode, callee_mode, callee_plan
from bridge.emulator.twilio.records import CallResult
from bridge.emulator.twilio.script import CallScript
from bridge.emulator.twilio.state import CallEntry, NumberRecord, TwilioEmulatorState
from bridge.emulator.twilio.twiml import parse_twiml
from bridge.emulator.twilio.webhook import API_VERSION, rfc2822
from bridge.errors import InputError, TwimlError

BASE = f"/{API_VERSION}/Accounts/{{account_sid}}"
MAX_TWIML_CHARS = 4000
HANGUP_WAIT_S = 5.0
_ENDED = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})

Handler = Callable[[Request, TwilioEmulatorState], Awaitable[Response]]


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def _not_found(path: str) -> JSONResponse:
    return twilio_error(404, 20404, f"The requested resource {path} was not found")


def _authorized(request: Request, state: TwilioEmulatorState) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = decode_strict(encoded).decode().partition(":")
    except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8
        return False
    return hmac.compare_digest(user, state.account_sid) and hmac.compare_digest(
        password, state.auth_token
    )


def _rest(state: TwilioEmulatorState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if not _authorized(request, state):
            resp = twilio_error(401, 20003, "Authenticate")
            resp.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            return resp
        if request.path_params["account_sid"] != state.account_sid:
            return _not_found(request.url.path)
        return await handler(request, state)

    return endpoint


async def _form(request: Request) -> FormData:
    return await request.form()


# --------------------------------------------------------------------------- JSON shapes


def _date(epoch: float | None) -> str | None:
    return rfc2822(epoch) if epoch is not None else None


def call_json(entry: CallEntry) -> dict[str, Any]:
    res: CallResult = entry.result
    uri = f"/{API_VERSION}/Accounts/{res.account_sid}/Calls/{res.call_sid}"
    duration = res.duration_s
    ended = res.status in _ENDED
    return {
        "account_sid": res.account_sid,
        "annotation": None,
        "answered_by": res.answered_by,
        "api_version": API_VERSION,
        "caller_name": None,
        "date_created": _date(entry.created),
        "date_updated": _date(entry.updated),
        "direction": res.direction,
        "duration": str(max(0, round(duration))) if duration is not None and ended else None,
        "end_time": _date(entry.epoch_at(res.ended_at)) if ended else None,
        "forwarded_from": None,
        "from": res.from_,
        "from_formatted": res.from_,
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": entry.phone_number_sid,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": res.call_sid,
        "start_time": _date(entry.epoch_at(res.answered_at)),
        "status": res.status,
        "subresource_uris": {
            "notifications": f"{uri}/Notifications.json",
            "recordings": f"{uri}/Recordings.json",
            "events": f"{uri}/Events.json",
        },
        "to": res.to,
        "to_formatted": res.to,
        "trunk_sid": None,
        "uri": f"{uri}.json",
    }


def number_json(state: TwilioEmulatorState, n: NumberRecord) -> dict[str, Any]:
    return {
        "account_sid": state.account_sid,
        "address_requirements": "none",
        "address_sid": None,
        "api_version": API_VERSION,
        "beta": False,
        "bundle_sid": None,
        "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
        "date_created": _date(n.created),
        "date_updated": _date(n.updated),
        "emergency_address_sid": None,
        "emergency_status": "Inactive",
        "friendly_name": n.friendly_name,
        "identity_sid": None,
        "origin": "twilio",
        "phone_number": n.phone_number,
        "sid": n.sid,
        "sms_application_sid": "",
        "sms_fallback_method": "POST",
        "sms_fallback_url": "",
        "sms_method": "POST",
        "sms_url": "",
        "status": "in-use",
        "status_callback": n.status_callback or "",
        "status_callback_method": n.status_callback_method,
        "trunk_sid": None,
        "uri": f"/{API_VERSION}/Accounts/{state.account_sid}/IncomingPhoneNumbers/{n.sid}.json",
        "voice_application_sid": "",
        "voice_caller_id_lookup": False,
        "voice_fallback_method": "POST",
        "voice_fallback_url": n.voice_fallback_url or "",
        "voice_method": n.voice_method,
        "voice_receive_mode": "voice",
        "voice_url": n.voice_url or "",
        "type": "local",
    }


def _page(request: Request, key: str, items: list[dict[str, Any]]) -> JSONResponse:
    uri = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    first = request.url.path + "?" + urlencode({**request.query_params, "Page": 0})
    return JSONResponse(
        {
            key: items,
            "end": max(0, len(items) - 1),
            "first_page_uri": first,
            "next_page_uri": None,
            "page": 0,
            "page_size": max(50, len(items)),
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }
    )


# --------------------------------------------------------------------------- calls


def _method_ok(value: str | None) -> bool:
    return value is None or value.upper() in ("GET", "POST")


async def create_call(request: Request, state: TwilioEmulatorState) -> Response:
    form = await _form(request)
    values = {k: str(v) for k, v in form.items()}
    if not values.get("To"):
        return twilio_error(400, 21201, "No 'To' number is specified")
    if not values.get("From"):
        return twilio_error(400, 21213, "No 'From' number is specified")
    url, twiml = values.get("Url"), values.get("Twiml")
    if not url and not twiml:
        return twilio_error(400, 21205, "Url parameter is required")
    if twiml and len(twiml) > MAX_TWIML_CHARS:
        return twilio_error(400, 21200, f"Twiml exceeds {MAX_TWIML_CHARS} characters")
    for name in ("Method", "StatusCallbackMethod", "AsyncAmdStatusCallbackMethod"):
        if not _method_ok(values.get(name)):
            return twilio_error(400, 21200, f"{name} must be GET or POST")
    events: list[str] = []
    for raw in form.getlist("StatusCallbackEvent"):
        events += str(raw).split()
    try:
        entry = state.create_outbound(values, events)
    except InputError as e:
        return twilio_error(400, 21200, f"Invalid parameter {e.field}: {e.problem}")
    except ValueError as e:  # Timeout not a number
        return twilio_error(400, 21200, f"Invalid parameter: {e}")
    return JSONResponse(call_json(entry), status_code=201)


async def list_calls(request: Request, state: TwilioEmulatorState) -> Response:
    q = request.query_params
    entries = [
        e
        for e in state.calls.values()
        if (not q.get("To") or e.result.to == q["To"])
        and (not q.get("From") or e.result.from_ == q["From"])
        and (not q.get("Status") or e.result.status == q["Status"])
    ]
    entries.sort(key=lambda e: e.created, reverse=True)  # newest first, as Twilio lists
    return _page(request, "calls", [call_json(e) for e in entries])


async def call_resource(request: Request, state: TwilioEmulatorState) -> Response:
    entry = state.calls.get(request.path_params["call_sid"])
    if entry is None:
        return _not_found(request.url.path)
    if request.method == "GET":
        return JSONResponse(call_json(entry))
    form = await _form(request)
    values = {k: str(v) for k, v in form.items()}
    status, twiml, url = values.get("Status"), values.get("Twiml"), values.get("Url")
    live = entry.result.outcome is None
    if status is not None:
        if status not in ("completed", "canceled"):
            return twilio_error(400, 21200, f"Status must be completed or canceled, got {status!r}")
        if live:
            entry.call.hang_up(f"Status={status} via REST")
            # Answer once the stream got its `stop` (not after the callbacks went out).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.call.ended.wait(), HANGUP_WAIT_S)
    elif twiml is not None or url is not None:
        if not live:
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if twiml is not None:
            if len(twiml) > MAX_TWIML_CHARS:
                return twilio_error(400, 21200, f"Twiml exceeds {MAX_TWIML_CHARS} characters")
            try:
                parse_twiml(twiml)
            except TwimlError as e:
                return twilio_error(400, 12100, f"Document parse failure: {e.detail}")
            entry.call.update(twiml=twiml)
        else:
            assert url is not None
            entry.call.update(url=url, method=values.get("Method", "POST"))
    entry.updated = time.time()
    return JSONResponse(call_json(entry))


# --------------------------------------------------------------------------- numbers


async def numbers(request: Request, state: TwilioEmulatorState) -> Response:
    if request.method == "POST":
        form = {k: str(v) for k, v in (await _form(request)).items()}
        phone = form.get("PhoneNumber")
        if not phone:
            return twilio_error(400, 21421, "PhoneNumber is required")
        try:
            rec = state.add_number(
                phone,
                voice_url=form.get("VoiceUrl") or None,
                voice_method=form.get("VoiceMethod", "POST").upper(),
                status_callback=form.get("StatusCallback") or None,
                friendly_name=form.get("FriendlyName") or None,
            )
        except InputError as e:
            return twilio_error(400, 21422, e.problem)
        return JSONResponse(number_json(state, rec), status_code=201)
    want = request.query_params.get("PhoneNumber")
    found = [n for n in state.numbers.values() if not want or n.phone_number == want]
    return _page(request, "incoming_phone_numbers", [number_json(state, n) for n in found])


_NUMBER_FIELDS = {
    "VoiceUrl": "voice_url",
    "VoiceFallbackUrl": "voice_fallback_url",
    "StatusCallback": "status_callback",
}


async def number_resource(request: Request, state: TwilioEmulatorState) -> Response:
    rec = state.numbers.get(request.path_params["number_sid"])
    if rec is None:
        return _not_found(request.url.path)
    if request.method == "POST":
        form = {k: str(v) for k, v in (await _form(request)).items()}
        for name in ("VoiceMethod", "StatusCallbackMethod"):
            if not _method_ok(form.get(name)):
                return twilio_error(400, 21200, f"{name} must be GET or POST")
        for param, attr in _NUMBER_FIELDS.items():
            if param in form:
                setattr(rec, attr, form[param] or None)
        if "VoiceMethod" in form:
            rec.voice_method = form["VoiceMethod"].upper()
        if "StatusCallbackMethod" in form:
            rec.status_callback_method = form["StatusCallbackMethod"].upper()
        if "FriendlyName" in form:
            rec.friendly_name = form["FriendlyName"] or rec.phone_number
        rec.updated = time.time()
    return JSONResponse(number_json(state, rec))


# --------------------------------------------------------------------------- inspection


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as e:
        raise InputError("body", f"expected a JSON object: {e}") from None
    if not isinstance(body, dict):
        raise InputError("body", "expected a JSON object")
    return body


def _input_error(e: InputError) -> JSONResponse:
    return JSONResponse({"error": f"{e.field}: {e.problem}", "field": e.field}, status_code=422)


def inspection_routes(state: TwilioEmulatorState) -> list[BaseRoute]:
    async def calls(request: Request) -> Response:
        if request.method == "POST":
            return await place(request)
        return JSONResponse({"calls": [_summary(e) for e in state.calls.values()]})

    async def call(request: Request) -> Response:
        entry = state.calls.get(request.path_params["call_sid"])
        if entry is None:
            return JSONResponse({"error": "no such call"}, status_code=404)
        return JSONResponse(_summary(entry))

    async def place(request: Request) -> Response:
        try:
            body = await _json_body(request)
            to, from_ = str(body.get("to", "")), str(body.get("from", "+15005550006"))
            caller = callee_mode(str(body.get("caller", "human")))
            if caller not in (CalleeMode.HUMAN, CalleeMode.VOICEMAIL):
                raise InputError("caller", "expected human or voicemail")
            script = callee_plan(caller).script
            hangup = body.get("hangup_after_s")
            if hangup is not None:
                if not isinstance(hangup, int | float) or hangup <= 0:
                    raise InputError("hangup_after_s", "expected a positive number")
                script = CallScript(script.steps, float(hangup), script.max_duration_s)
            entry = await state.place_inbound(to=to, from_=from_, script=script, wait=False)
        except InputError as e:
            return _input_error(e)
        return JSONResponse({"sid": entry.call.call_sid}, status_code=201)

    async def callees(request: Request) -> Response:
        if request.method == "PUT":
            try:
                body = await _json_body(request)
                if "default" in body:
                    state.default_callee = callee_mode(str(body["default"]))
                if "number" in body:
                    state.set_callee(str(body["number"]), callee_mode(str(body.get("mode"))))
            except InputError as e:
                return _input_error(e)
        return JSONResponse(
            {
                "default": state.default_callee.value,
                "numbers": {k: v.value for k, v in state.callees.items()},
            }
        )

    async def add_number(request: Request) -> Response:
        try:
            body = await _json_body(request)
            phone = body.get("phone_number")
            if not isinstance(phone, str) or not phone:
                raise InputError("phone_number", "expected a phone number string")
            rec = state.add_number(
                phone,
                voice_url=body.get("voice_url"),
                status_callback=body.get("status_callback"),
            )
        except InputError as e:
            return _input_error(e)
        return JSONResponse(number_json(state, rec), status_code=201)

    return [
        Route("/emulator/twilio/calls", calls, methods=["GET", "POST"]),
        Route("/emulator/twilio/calls/{call_sid}", call, methods=["GET"]),
        Route("/emulator/twilio/callees", callees, methods=["GET", "PUT"]),
        Route("/emulator/twilio/numbers", add_number, methods=["POST"]),
    ]


def _summary(entry: CallEntry) -> dict[str, Any]:
    return {**entry.result.summary(), "date_created": _date(entry.created)}


# --------------------------------------------------------------------------- app


def twilio_routes(state: TwilioEmulatorState) -> list[BaseRoute]:
    """REST + inspection routes over ``state``, to mount next to other emulators."""
    return [
        Route(f"{BASE}/Calls.json", _rest(state, _calls_collection), methods=["GET", "POST"]),
        Route(
            f"{BASE}/Calls/{{call_sid}}.json", _rest(state, call_resource), methods=["GET", "POST"]
        ),
        Route(f"{BASE}/IncomingPhoneNumbers.json", _rest(state, numbers), methods=["GET", "POST"]),
        Route(
            f"{BASE}/IncomingPhoneNumbers/{{number_sid}}.json",
            _rest(state, number_resource),
            methods=["GET", "POST"],
        ),
        *inspection_routes(state),
    ]


async def _calls_collection(request: Request, state: TwilioEmulatorState) -> Response:
    if request.method == "POST":
        return await create_call(request, state)
    return await list_calls(request, state)


def create_twilio_app(
    state: TwilioEmulatorState | None = None,
    *,
    account_sid: str = "AC" + "0" * 32,
    auth_token: str = "emulator-auth-token",
    speed: float = 1.0,
) -> Starlette:
    """A Starlette app serving the Twilio emulator; its lifespan ends the calls it runs."""
    st = state or TwilioEmulatorState(account_sid=account_sid, auth_token=auth_token, speed=speed)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await st.aclose()

    app = Starlette(routes=twilio_routes(st), lifespan=lifespan)
    app.state.twilio = st
    return app
