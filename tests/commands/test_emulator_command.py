"""`bridge emulator`: both emulators answer on one port, with the keys given."""

from __future__ import annotations

import httpx

from bridge.asgi import running_server
from bridge.cli import build_parser
from bridge.commands.emulator import build_app

SID = "AC" + "1" * 32


async def test_one_port_serves_platform_and_twilio() -> None:
    args = build_parser().parse_args(
        ["emulator", "--port", "0", "--api-key", "k1", "--account-sid", SID, "--auth-token", "t1"]
    )
    app = build_app(args)
    async with running_server(app) as srv, httpx.AsyncClient(base_url=srv.http_url) as http:
        ok = await http.get("/v1/convai/agents", headers={"xi-api-key": "k1"})
        assert ok.status_code == 200
        assert "agent_emulator_echo" in {a["agent_id"] for a in ok.json()["agents"]}
        assert (
            await http.get("/v1/convai/agents", headers={"xi-api-key": "no"})
        ).status_code == 401

        calls = f"/2010-04-01/Accounts/{SID}/Calls.json"
        assert (await http.get(calls, auth=(SID, "t1"))).json()["calls"] == []
        assert (await http.get(calls, auth=(SID, "wrong"))).status_code == 401
