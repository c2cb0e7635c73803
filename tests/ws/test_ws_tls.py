"""``wss://`` through our client socket: the agent platform is always reached over TLS.

A real TLS server on loopback (websockets' own asyncio server with a certificate from a
throwaway CA made by ``trustme``): our client completes the handshake and talks through
it when it trusts the CA, and refuses the server when it does not, which the agent
connector reports as a failure to open.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import trustme
from websockets.asyncio.server import ServerConnection, serve

from bridge.convai.client import AgentConnector
from bridge.errors import PlatformApiError
from bridge.ws.client import open_socket
from tests.ws.peers import WAIT_S, Recorder, wait_until


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(f"echo:{message}")


@pytest_asyncio.fixture
async def tls_port(ca: trustme.CA) -> AsyncIterator[int]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    async with serve(_echo, "127.0.0.1", 0, ssl=server_ctx, compression=None) as server:
        yield server.sockets[0].getsockname()[1]


async def test_messages_flow_over_tls_when_the_ca_is_trusted(ca: trustme.CA, tls_port: int) -> None:
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    sock = await open_socket(f"wss://127.0.0.1:{tls_port}/", ssl_context=client_ctx)
    rec = Recorder()
    sock.attach(rec)
    assert sock._splitter is not None  # the fast path runs over TLS too
    assert sock.send_texts(["one", "two"])
    await wait_until(lambda: len(rec.messages) >= 2, rec.changed)
    assert rec.messages == ["echo:one", "echo:two"]
    sock.close(1000, "bye")
    await asyncio.wait_for(sock.wait_closed(), WAIT_S)
    assert sock.close_code == 1000


async def test_an_untrusted_certificate_is_refused(tls_port: int) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await open_socket(f"wss://127.0.0.1:{tls_port}/", open_timeout_s=WAIT_S)


async def test_the_connector_reports_a_tls_failure_as_a_failure_to_open(tls_port: int) -> None:
    connector = AgentConnector(f"wss://127.0.0.1:{tls_port}", open_timeout_s=WAIT_S)
    with pytest.raises(PlatformApiError, match="failed to open: SSLCertVerificationError"):
        await connector.connect("agent_x")
