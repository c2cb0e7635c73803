"""The edge in front of the real bridge, over loopback sockets, each attack beside a call.

Limits and timeouts come from tests/edge/conftest.py (EDGE): small and short.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import connect
from websockets.protocol import State

from bridge.twilio.signature import compute_signature
from bridge.ws.server import DirectWebSocketProtocol
from tests.edge.conftest import (
    EDGE,
    Answer,
    beside_a_call,
    edge_bridge,
    raw,
    read_until_closed,
    send_and_read,
)
from tests.faults.conftest import fault_bridge
from tests.fixtures.bridge import PUBLIC, TOKEN, eventually, metric
from tests.fixtures.platform_emulator import PlatformEmulator

INBOUND = "/twilio/inbound"


def head(*headers: str, method: str = "POST", target: str = INBOUND) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: bridge.test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def refused(answer: Answer, status: int, field: str | None) -> None:
    assert answer.status == status, answer.data[:300]
    assert answer.closed
    assert json.loads(answer.body)["error"]["field"] == field


async def test_a_declared_body_over_the_cap_is_413_without_reading_it(
    platform_emulator: PlatformEmulator,
) -> None:
    async with edge_bridge(platform_emulator) as e2e:
        # Only the head is sent: the answer cannot depend on reading the 10 MB body.
        big = head("Content-Type: application/x-www-form-urlencoded", "Content-Length: 10000000")
        answer = await beside_a_call(e2e, send_and_read(e2e, big))
    refused(answer, 413, "body")
    assert metric(e2e.app, "bridge_signature_failures_total", endpoint=INBOUND) == 0


async def test_a_chunked_body_over_the_cap_is_413(platform_emulator: PlatformEmulator) -> None:
    chunk = b"%x\r\n" % 1000 + b"k=" + b"v" * 998 + b"\r\n"
    request = head("Content-Type: application/x-www-form-urlencoded", "Transfer-Encoding: chunked")

    async def attack() -> Answer:
        async with raw(e2e) as (reader, writer):
            writer.write(request + chunk * 4)  # 4000 bytes: under the 4096 cap
            await asyncio.sleep(0.05)
            assert not reader.at_eof()
            writer.write(chunk)  # the size line that passes the cap
            return await read_until_closed(reader)

    async with edge_bridge(platform_emulator) as e2e:
        answer = await beside_a_call(e2e, attack())
    refused(answer, 413, "body")


async def test_too_many_form_fields_is_413_before_parsing(
    platform_emulator: PlatformEmulator,
) -> None:
    fields = {f"k{i}": "v" for i in range(int(EDGE["max_form_fields"]) + 1)}

    async def attack() -> httpx.Response:
        async with httpx.AsyncClient(base_url=e2e.server.http_url) as c:
            return await c.post(
                INBOUND,
                content=urlencode(fields),
                headers={
                    "X-Twilio-Signature": "x",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                timeout=5,
            )

    async with edge_bridge(platform_emulator) as e2e:
        r = await beside_a_call(e2e, attack())
    assert r.status_code == 413
    assert "form fields" in r.text
    assert metric(e2e.app, "bridge_signature_failures_total", endpoint=INBOUND) == 0


async def test_a_bad_signature_on_a_largest_body_is_403(
    platform_emulator: PlatformEmulator,
) -> None:
    # The worst accepted shape: the largest body, the most fields, a forged signature.
    n = int(EDGE["max_form_fields"]) - 1
    value = "v" * ((int(EDGE["max_body_bytes"]) - n * 5) // n)
    body = "&".join(f"k{i:02d}={value}" for i in range(n)).encode()
    body += b"x" * (int(EDGE["max_body_bytes"]) - len(body))
    assert len(body) == EDGE["max_body_bytes"]
    forged = compute_signature("not-the-token", PUBLIC + INBOUND, {"k00": value})

    async def attack() -> list[int]:
        async with httpx.AsyncClient(base_url=e2e.server.http_url) as c:
            return [
                (
                    await c.post(
                        INBOUND,
                        content=body,
                        headers={
                            "X-Twilio-Signature": forged,
                            "Content-Type": "application/x-www-form-urlencoded",
                        },
                        timeout=5,
                    )
                ).status_code
                for _ in range(20)
            ]

    async with edge_bridge(platform_emulator) as e2e:
        statuses = await beside_a_call(e2e, attack())
    assert statuses == [403] * 20
    assert metric(e2e.app, "bridge_signature_failures_total", endpoint=INBOUND) == 20


async def test_an_idle_connection_gets_408_and_is_closed(
    platform_emulator: PlatformEmulator,
) -> None:
    async def attack() -> Answer:
        async with raw(e2e) as (reader, _):
            return await read_until_closed(reader)

    async with edge_bridge(platform_emulator) as e2e:
        answer = await beside_a_call(e2e, attack())
        assert metric(e2e.app, "bridge_edge_refused_total", reason="head_timeout") == 1
    refused(answer, 408, None)


async def test_a_trickled_head_is_cut_off(platform_emulator: PlatformEmulator) -> None:
    request = head("X-Slow: " + "a" * 100, method="GET", target="/healthz")

    async def attack() -> tuple[int, Answer]:
        sent = 0
        async with raw(e2e) as (reader, writer):

            async def trickle() -> None:
                nonlocal sent
                for byte in request:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    sent += 1
                    await asyncio.sleep(0.05)

            task = asyncio.create_task(trickle())
            answer = await read_until_closed(reader)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
            return sent, answer

    async with edge_bridge(platform_emulator) as e2e:
        sent, answer = await beside_a_call(e2e, attack())
    assert sent < len(request)  # closed before the head was ever complete
    refused(answer, 408, None)


async def test_an_incomplete_websocket_upgrade_is_closed(
    platform_emulator: PlatformEmulator,
) -> None:
    # Everything but the blank line; the head timeout is longer than the upgrade's here,
    # so the upgrade deadline is what closes it.
    partial = head(
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        method="GET",
        target="/twilio/media",
    )[:-2]

    async def attack() -> Answer:
        async with raw(e2e) as (reader, writer):
            writer.write(partial)
            return await read_until_closed(reader, timeout_s=2.0)

    async with edge_bridge(
        platform_emulator, request_head_timeout_s=30.0, upgrade_timeout_s=0.3
    ) as e2e:
        answer = await beside_a_call(e2e, attack())
        assert metric(e2e.app, "bridge_edge_refused_total", reason="upgrade_timeout") == 1
    assert answer.closed
    assert answer.data == b""  # no HTTP answer to a WebSocket that never was


async def test_a_head_over_the_size_limit_is_431(platform_emulator: PlatformEmulator) -> None:
    big = head("X-Big: " + "a" * int(EDGE["max_header_bytes"]), method="GET", target="/healthz")
    async with edge_bridge(platform_emulator) as e2e:
        answer = await beside_a_call(e2e, send_and_read(e2e, big))
        assert metric(e2e.app, "bridge_edge_refused_total", reason="head_too_large") == 1
    refused(answer, 431, "headers")


async def test_too_many_headers_is_431(platform_emulator: PlatformEmulator) -> None:
    many = head(*(f"X-{i}: v" for i in range(int(EDGE["max_headers"]) + 1)), method="GET")
    async with edge_bridge(platform_emulator) as e2e:
        answer = await beside_a_call(e2e, send_and_read(e2e, many))
        assert metric(e2e.app, "bridge_edge_refused_total", reason="too_many_headers") == 1
    refused(answer, 431, "headers")


async def test_an_idle_keep_alive_connection_is_closed(
    platform_emulator: PlatformEmulator,
) -> None:
    async def attack() -> Answer:
        async with raw(e2e) as (reader, writer):
            writer.write(head(method="GET", target="/healthz"))
            return await read_until_closed(reader, timeout_s=3.0)

    # A head timeout far longer than the keep-alive: only the keep-alive can close it.
    async with edge_bridge(
        platform_emulator, request_head_timeout_s=30.0, keepalive_timeout_s=0.3
    ) as e2e:
        answer = await beside_a_call(e2e, attack())
    assert answer.status == 200
    assert answer.closed


async def test_past_max_connections_a_fast_503_and_the_call_goes_on(
    platform_emulator: PlatformEmulator,
) -> None:
    cap = 4
    held: list[asyncio.StreamWriter] = []

    async def attack() -> Answer:
        # The call's media stream is one of the open connections.
        uv = e2e.server.server.server_state
        await eventually(
            lambda: any(isinstance(c, DirectWebSocketProtocol) for c in uv.connections)
        )
        try:
            for _ in range(cap + 1):
                reader, writer = await asyncio.open_connection("127.0.0.1", e2e.server.port)
                held.append(writer)
                writer.write(head(method="GET", target="/healthz"))
                first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                if first.startswith(b"HTTP/1.1 503"):
                    rest = await read_until_closed(reader)
                    return Answer(first + rest.data, rest.closed)
                assert first.startswith(b"HTTP/1.1 200"), first
                await reader.readexactly(int(first.lower().split(b"content-length: ")[1][:4]))
            raise AssertionError("never refused")
        finally:
            for w in held:  # free the slots before the call's closing webhooks
                w.close()

    async with edge_bridge(
        platform_emulator, max_connections=cap, request_head_timeout_s=30.0, keepalive_timeout_s=30
    ) as e2e:
        answer = await beside_a_call(e2e, attack(), speed=1.0)
    refused(answer, 503, None)
    assert len(held) <= cap


async def test_a_normal_webhook_and_healthz_pass_the_edge(
    platform_emulator: PlatformEmulator,
) -> None:
    async def attack() -> int:
        async with httpx.AsyncClient(base_url=e2e.server.http_url) as c:
            return (await c.get("/healthz")).status_code

    async with edge_bridge(platform_emulator) as e2e:
        assert await beside_a_call(e2e, attack()) == 200


async def test_a_body_that_stops_coming_is_cut_off(platform_emulator: PlatformEmulator) -> None:
    request = head("Content-Type: application/x-www-form-urlencoded", "Content-Length: 100")

    async def attack() -> Answer:
        async with raw(e2e) as (reader, writer):
            writer.write(request + b"CallSid=CA1&")  # and never the rest
            return await read_until_closed(reader, timeout_s=3.0)

    async with edge_bridge(platform_emulator) as e2e:
        answer = await beside_a_call(e2e, attack())
    assert answer.closed
    assert answer.status is None  # the app was waiting for the body: nothing to answer


async def test_admin_requests_refused_at_the_edge_get_the_admin_error_shape(
    platform_emulator: PlatformEmulator,
) -> None:
    big = head("Content-Type: application/json", "Content-Length: 100000", target="/admin/agents")
    async with edge_bridge(platform_emulator) as e2e:
        answer = await send_and_read(e2e, big)
    refused(answer, 413, "body")
    assert b"content-type: application/json" in answer.data.lower()
    assert json.loads(answer.body)["error"]["message"]


async def test_the_media_endpoint_does_not_offer_permessage_deflate(
    platform_emulator: PlatformEmulator,
) -> None:
    signature = compute_signature(TOKEN, "wss://bridge.test/twilio/media", {})
    async with (
        edge_bridge(platform_emulator) as e2e,
        connect(  # websockets offers permessage-deflate by default
            e2e.server.ws_url + "/twilio/media",
            additional_headers={"X-Twilio-Signature": signature},
        ) as ws,
    ):
        assert ws.protocol.extensions == []
        # Past the upgrade the guard is out of the way: the stream outlives every edge
        # deadline (0.5 s here) and is still open.
        await asyncio.sleep(1.0)
        assert ws.state is State.OPEN


async def test_without_the_edge_the_webhook_still_reads_no_more_than_the_cap(
    platform_emulator: PlatformEmulator,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"k=" + b"v" * 998 + b"&"

    async with (
        fault_bridge(platform_emulator, server={"max_body_bytes": 4096}) as e2e,
        httpx.AsyncClient(base_url=e2e.server.http_url) as c,
    ):
        r = await c.post(
            INBOUND,
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        declared = await c.post(
            INBOUND,
            content=b"k=v" * 2000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 413
    assert declared.status_code == 413
    assert metric(e2e.app, "bridge_signature_failures_total", endpoint=INBOUND) == 0
