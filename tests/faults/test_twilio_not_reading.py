"""A Twilio side that stops reading: its call ends with ``twilio_not_reading`` once the
control frames it left unread pass their bound; a healthy call beside it is unharmed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from bridge.call.session import SessionSettings
from bridge.twilio import media as twilio
from bridge.twilio.signature import compute_signature
from tests.e2e.conftest import with_token
from tests.faults.conftest import STREAM_URL, fault_bridge
from tests.faults.test_agent_faults import HEALTHY_SCRIPT, assert_healthy, loopback_agent
from tests.faults.test_twilio_faults import audio_burst
from tests.fixtures.bridge import CALLER, TOKEN, BridgeUnderTest, account_sid_of, eventually, metric
from tests.fixtures.platform_emulator import PlatformEmulator

CALL_SID, STREAM_SID = "CA" + "d" * 32, "MZ" + "d" * 32


def bridge_holds(client: socket.socket) -> bool:
    """Whether a process still holds the bridge's end of ``client``'s connection
    (Linux: the kernel lists a socket no process holds with inode 0)."""
    ours, theirs = client.getsockname()[1], client.getpeername()[1]
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
            if (local, remote) == (theirs, ours):
                return int(fields[9]) != 0
    return False


class DeafStream:
    """A media stream over a plain socket that, after the handshake, never reads a byte
    (a client library would go on reading into its own buffers)."""

    def __init__(self, sock: socket.socket, ws: ClientProtocol):
        self.sock, self.ws = sock, ws

    async def send(self, text: str) -> None:
        self.ws.send_text(text.encode())
        for data in self.ws.data_to_send():
            await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def start(self, app: Starlette, agent: str) -> None:
        await self.send(twilio.encode(twilio.Connected()))
        account = account_sid_of(app)
        params = with_token(
            app, CALL_SID, {"agent_id": agent, "caller_id": CALLER}, account_sid=account
        )
        body = twilio.StartBody(
            streamSid=STREAM_SID, callSid=CALL_SID, accountSid=account, customParameters=params
        )
        await self.send(
            twilio.encode(twilio.Start(sequenceNumber="1", start=body, streamSid=STREAM_SID))
        )

    async def media(self, seq: int) -> None:
        await self.send(
            '{"event":"media","sequenceNumber":"' + str(seq) + '","media":{"track":"inbound",'
            '"chunk":"1","timestamp":"0","payload":"'
            + "/" * 212
            + '=="},"streamSid":"'
            + STREAM_SID
            + '"}'
        )


@contextlib.asynccontextmanager
async def deaf_stream(e2e: BridgeUnderTest) -> AsyncIterator[DeafStream]:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", e2e.server.port))
        ws = ClientProtocol(parse_uri(e2e.server.ws_url + "/twilio/media"))
        request = ws.connect()
        request.headers["X-Twilio-Signature"] = compute_signature(TOKEN, STREAM_URL, {})
        ws.send_request(request)
        for data in ws.data_to_send():
            await loop.sock_sendall(sock, data)
        response = b""
        while not response.endswith(b"\r\n\r\n"):  # byte by byte: not one past the head
            byte = await loop.sock_recv(sock, 1)
            assert byte, "closed during the handshake"
            response += byte
        ws.receive_data(response)
        assert ws.state is State.OPEN, ws.handshake_exc
        yield DeafStream(sock, ws)
    finally:
        sock.close()


async def test_a_caller_socket_that_never_reads_ends_its_call_and_only_its_call(
    platform_emulator: PlatformEmulator,
) -> None:
    p = platform_emulator
    # One mark per 1 s event: once the kernel buffers and the audio bound are full, the
    # marks pile up (they are never shed) until the control bound ends the call.
    burst = p.create_agent(
        behaviour={
            "mode": "silent",
            "greeting": False,
            "steps": [{"type": "raw", "frames": audio_burst(900, 1)}],
        },
        input_format="ulaw_8000",
        output_format="ulaw_8000",
    )
    healthy = loopback_agent(p)
    settings = SessionSettings(max_twilio_queue_chars=20_000)  # marks bound: 5000 chars
    async with fault_bridge(p, settings=settings) as e2e:
        good_task = asyncio.create_task(e2e.call(healthy, HEALTHY_SCRIPT))
        calls = e2e.app.state.calls
        async with deaf_stream(e2e) as caller:
            await caller.start(e2e.app, burst)
            await eventually(lambda: calls.get(CALL_SID) is not None)
            queue = calls.get(CALL_SID).session.to_twilio
            seq = 1
            while calls.get(CALL_SID) is not None:  # Twilio still sends every 20 ms
                seq += 1
                assert seq < 1500, (queue.chars, queue.dropped, queue.control_kept)
                await caller.media(seq)
                await asyncio.sleep(0.02)
            # The bridge gives up on the close handshake nobody reads (uvicorn's 10 s) and
            # lets the socket go, instead of holding it and its unsent data for ever.
            assert bridge_holds(caller.sock)
            await eventually(lambda: not bridge_holds(caller.sock), timeout_s=20)
        assert queue.dropped > 0 and queue.chars == 0  # shed, then cleared at the end
        assert e2e.call_record_reason(CALL_SID) == "twilio_not_reading"
        assert (
            metric(e2e.app, "bridge_calls_total", outcome="error", reason="twilio_not_reading") == 1
        )
        (conv,) = p.conversations(burst)
        await p.wait_until_ended(conv.conversation_id)  # the agent side was closed too
        assert_healthy(e2e, await good_task)
