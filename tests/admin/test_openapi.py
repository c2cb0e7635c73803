"""The served OpenAPI document against the running admin API, with schemathesis.

Every operation is fuzzed with schema-conforming data and with data that breaks the
schema; the responses must be documented (status, content type, body schema), never a
5xx other than the documented upstream/store ones, invalid data must be refused, and
every operation must refuse a request without the token (``ignored_auth``).

Schemathesis' client is blocking, so it runs in a worker thread while this test's event
loop serves the bridge and both emulators.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from bridge.admin.openapi import openapi_document
from tests.admin.stack import BridgeUnderTest

EXAMPLES = 5  # per operation and mode: enough to walk the error paths, seconds in all
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]


def _fuzz_operation(
    op: Any, mode: GenerationMode, checks: list[Any], base_url: str, headers: dict[str, str]
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks)

    run()


def _fuzz(doc: dict[str, Any], base_url: str, token: str) -> list[str]:
    schema = schemathesis.openapi.from_dict(doc)
    headers = {"Authorization": f"Bearer {token}"}
    tested: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        _fuzz_operation(
            op, GenerationMode.POSITIVE, [*CONFORMANCE, not_a_server_error], base_url, headers
        )
        _fuzz_operation(
            op, GenerationMode.NEGATIVE, [*CONFORMANCE, negative_data_rejection], base_url, headers
        )
        tested.append(f"{op.method.upper()} {op.path}")
    return tested


async def test_served_document_is_the_generated_one(bridge: BridgeUnderTest) -> None:
    async with bridge.client() as c:
        served = (await c.get("/admin/openapi.json")).json()
    assert served == json.loads(json.dumps(openapi_document()))
    assert served["openapi"].startswith("3.1")


async def test_api_conforms_to_its_openapi_document(bridge: BridgeUnderTest) -> None:
    async with bridge.client() as c:
        doc = (await c.get("/admin/openapi.json")).json()
        r = await c.post("/admin/agents", json={"name": "Fuzz target", "prompt": "Hi."})
        assert r.status_code == 201
    tested = await asyncio.to_thread(_fuzz, doc, bridge.url, bridge.token)
    assert set(tested) >= {
        "GET /admin/numbers",
        "POST /admin/numbers",
        "GET /admin/numbers/{id}",
        "PATCH /admin/numbers/{id}",
        "DELETE /admin/numbers/{id}",
        "GET /admin/agents",
        "POST /admin/agents",
        "GET /admin/calls",
        "GET /admin/calls/{sid}",
        "POST /admin/calls/{sid}/hangup",
        "POST /admin/calls/{sid}/transfer",
        "GET /admin/webhooks/deliveries",
        "POST /admin/webhooks/deliveries/{id}/retry",
    }
