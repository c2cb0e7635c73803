"""The OpenAPI 3.1 document of the admin API, served at ``/admin/openapi.json``.

Schemas come from the very Structs the handlers decode and encode
(``msgspec.json.schema_components``); only the paths, parameters and status codes are
written here.  ``tests/admin/test_openapi.py`` runs schemathesis against a live app to
keep the two honest.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from bridge.admin import models
from bridge.store import CallPage, CallRecord, NumberRecord
from bridge.store.deliveries import DELIVERY_STATES, DeliveryPage, DeliveryRecord
from bridge.store.store import MAX_PAGE

_SCHEMA_TYPES: Final = (
    models.ImportNumber,
    models.UpdateNumber,
    models.CreateAgent,
    models.NumberList,
    models.ImportResult,
    models.DeleteResult,
    models.AgentInfo,
    models.AgentList,
    models.HangupResult,
    models.TransferCall,
    models.TransferResult,
    models.CallTranscript,
    models.InstanceList,
    models.ErrorBody,
    NumberRecord,
    CallRecord,
    CallPage,
    # POST /admin/calls is served by the telephony features (bridge/telephony/endpoints.py).
    models.OutboundCall,
    models.DialResult,
    # Post-call webhooks (bridge/webhooks/admin.py).
    DeliveryRecord,
    DeliveryPage,
)

_ERROR_TEXT: Final = {
    400: "Unreadable body or query parameter",
    401: "Missing or wrong admin token",
    404: "No such number or call",
    403: "Not allowed (a transfer target outside telephony.transfer_allow)",
    409: "Duplicate, or the resource is in the wrong state",
    413: "Body too large",
    422: "A field does not fit (the error names it)",
    429: "Too many calls from this number: retry after Retry-After seconds",
    502: "The Agents Platform or Twilio failed (see error.upstream)",
    503: "The store is failing, or the bridge lacks configuration for this",
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _op(
    summary: str,
    ok: tuple[int, str, str],
    errors: tuple[int, ...],
    *,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    status, schema, text = ok
    responses: dict[str, Any] = {str(status): {"description": text, "content": _json(_ref(schema))}}
    for code in sorted({401, *errors}):
        responses[str(code)] = {
            "description": _ERROR_TEXT[code],
            "content": _json(_ref("ErrorBody")),
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(_ref(body))}
    if params:
        op["parameters"] = params
    return op


def _recording_op() -> dict[str, Any]:
    """GET of a call's WAV (bridge.recording): audio, with HTTP Range support."""
    op = _op("The call's recording (stereo WAV: caller left, agent right)", (200, "", ""), (404,))
    op["responses"]["200"] = {
        "description": "The whole file (Accept-Ranges: bytes)",
        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
    }
    op["responses"]["206"] = {
        "description": "The requested byte range (Content-Range)",
        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
    }
    op["responses"]["416"] = {"description": "Range not satisfiable"}
    op["parameters"] = [
        {
            "name": "Range",
            "in": "header",
            "required": False,
            "description": "bytes=START-END, bytes=START- or bytes=-SUFFIX",
            "schema": {"type": "string"},
        }
    ]
    return op


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "pattern": r"^[^/]+$"},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_NUMBER_ID = _path_param("id", "E.164 number or the platform's phone_number_id")
_CALL_SID = _path_param("sid", "Twilio call SID")
_WRITE_ERRORS = (400, 413, 422, 502, 503)


def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        _SCHEMA_TYPES, ref_template="#/components/schemas/{name}"
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bridge admin API",
            "version": "1",
            "description": "Provision numbers and agents, inspect and end calls. "
            "Every request needs Authorization: Bearer <BRIDGE_ADMIN_TOKEN>.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/admin/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI document",
                            "content": _json({"type": "object"}),
                        },
                        "401": {
                            "description": _ERROR_TEXT[401],
                            "content": _json(_ref("ErrorBody")),
                        },
                    },
                }
            },
            "/admin/numbers": {
                "get": _op("List provisioned numbers", (200, "NumberList", "Numbers"), ()),
                "post": _op(
                    "Import a Twilio number: platform import, agent, Twilio voice URL, route",
                    (201, "ImportResult", "Imported"),
                    (409, *_WRITE_ERRORS),
                    body="ImportNumber",
                ),
            },
            "/admin/numbers/{id}": {
                "parameters": [_NUMBER_ID],
                "get": _op("One number", (200, "NumberRecord", "The number"), (404,)),
                "patch": _op(
                    "Assign or unassign the agent, set bridge-side overrides",
                    (200, "NumberRecord", "Updated"),
                    (404, *_WRITE_ERRORS),
                    body="UpdateNumber",
                ),
                "delete": _op(
                    "Delete from the platform and this bridge; optionally restore Twilio",
                    (200, "DeleteResult", "Deleted"),
                    (400, 404, 422, 502, 503),
                    params=[
                        _query(
                            "restore_voice_url",
                            {"type": "string", "pattern": r"^https?://[^\s/?#]+[^\s]*$"},
                            "Point the Twilio number's voice URL here (status callback cleared)",
                        )
                    ],
                ),
            },
            "/admin/agents": {
                "get": _op("List agents on the platform", (200, "AgentList", "Agents"), (502,)),
                "post": _op(
                    "Create a telephony-ready agent (ulaw_8000, end_call, bridge tools)",
                    (201, "AgentInfo", "Created"),
                    _WRITE_ERRORS,
                    body="CreateAgent",
                ),
            },
            "/admin/calls": {
                "get": _op(
                    "Call records, newest first",
                    (200, "CallPage", "One page; pass next_cursor as cursor for the next"),
                    (400, 503),
                    params=[
                        _query("live", {"type": "boolean"}, "true: in progress; false: ended"),
                        _query(
                            "number",
                            {"type": "string", "pattern": models.E164_PATTERN},
                            "Calls to or from this number",
                        ),
                        _query(
                            "agent_id",
                            {"type": "string", "pattern": models.AGENT_ID_PATTERN},
                            "Calls answered by this agent",
                        ),
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
                            "Page size",
                        ),
                        _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    ],
                ),
                "post": _op(
                    "Place an outbound call from one of our numbers, bridged to an agent",
                    (201, "DialResult", "The call is queued at Twilio"),
                    (429, *_WRITE_ERRORS),
                    body="OutboundCall",
                ),
            },
            "/admin/calls/{sid}": {
                "parameters": [_CALL_SID],
                "get": _op("One call record", (200, "CallRecord", "The call"), (404, 503)),
            },
            "/admin/calls/{sid}/transcript": {
                "parameters": [_CALL_SID],
                "get": _op(
                    "The call's transcript and per-turn latency (text/plain by Accept)",
                    (200, "CallTranscript", "The transcript"),
                    (404, 503),
                ),
            },
            "/admin/calls/{sid}/recording": {
                "parameters": [_CALL_SID],
                "get": _recording_op(),
            },
            "/admin/calls/{sid}/hangup": {
                "parameters": [_CALL_SID],
                "post": _op(
                    "End a live call, on whichever instance handles it",
                    (200, "HangupResult", "The call is ending"),
                    (404, 409, 502, 503),
                ),
            },
            "/admin/calls/{sid}/transfer": {
                "parameters": [_CALL_SID],
                "post": _op(
                    "Hand a live call to a number or SIP URI, on whichever instance handles it",
                    (200, "TransferResult", "The call's stream ends and Twilio dials the target"),
                    (400, 403, 404, 409, 422, 502, 503),
                    body="TransferCall",
                ),
            },
            "/admin/instances": {
                "get": _op(
                    "The bridge instances sharing the store, this one first",
                    (200, "InstanceList", "Every instance the store knows, with its state"),
                    (503,),
                ),
            },
            "/admin/webhooks/deliveries": {
                "get": _op(
                    "Post-call webhook deliveries, newest first",
                    (200, "DeliveryPage", "One page; pass next_cursor as cursor for the next"),
                    (400, 503),
                    params=[
                        _query(
                            "state",
                            {"type": "string", "enum": list(DELIVERY_STATES)},
                            "Only deliveries in this state",
                        ),
                        _query(
                            "call_sid",
                            {"type": "string", "pattern": r"^[A-Za-z0-9_\-]{1,64}$"},
                            "Deliveries of this call",
                        ),
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
                            "Page size",
                        ),
                        _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    ],
                ),
            },
            "/admin/webhooks/deliveries/{id}/retry": {
                "parameters": [_path_param("id", "Delivery id (whd_...)")],
                "post": _op(
                    "Send a delivery again now, whatever its state",
                    (200, "DeliveryRecord", "Due now; sent within moments"),
                    (404, 503),
                ),
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
