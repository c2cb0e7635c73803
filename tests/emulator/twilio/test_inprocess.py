"""The Twilio REST emulator inside `bridge serve`: only with no Twilio account and a
loopback-only bridge; then the bridge's REST client and signature checks use it."""

from __future__ import annotations

import httpx
import pytest

from bridge.commands.serve import prepare
from bridge.config import load_config
from bridge.emulator.twilio import inprocess

LOOPBACK = {"BRIDGE_DB": ":memory:"}


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({}, None),
        ({"BRIDGE_PUBLIC_URL": "http://127.0.0.1:8080"}, None),
        ({"TWILIO_AUTH_TOKEN": "real-token"}, "Twilio credentials are configured"),
        ({"TWILIO_ACCOUNT_SID": "AC" + "1" * 32}, "Twilio credentials are configured"),
        ({"TWILIO_API_BASE_URL": "http://127.0.0.1:9000"}, "twilio.api_base_url is set"),
        (
            {"BRIDGE_HOST": "0.0.0.0", "BRIDGE_VALIDATE_TWILIO_SIGNATURES": "false"},
            "server.host 0.0.0.0 makes the bridge reachable from beyond this machine",
        ),
        (
            {
                "BRIDGE_PUBLIC_URL": "https://bridge.example.com",
                "BRIDGE_VALIDATE_TWILIO_SIGNATURES": "false",
            },
            "server.public_url https://bridge.example.com makes the bridge reachable",
        ),
    ],
)
def test_runs_only_with_no_account_and_a_loopback_bridge(
    env: dict[str, str], why: str | None
) -> None:
    refusal = inprocess.refusal(load_config(env={**LOOPBACK, **env}))
    if why is None:
        assert refusal is None
    else:
        assert refusal is not None and refusal.startswith(why)


async def test_serve_points_rest_and_signatures_at_the_emulator_with_its_numbers() -> None:
    async with prepare(load_config(env=LOOPBACK)) as (effective, _app):
        tw = effective.twilio
        assert (tw.account_sid, tw.auth_token) == (inprocess.ACCOUNT_SID, inprocess.AUTH_TOKEN)
        assert tw.signatures_enforced
        url = f"{tw.api_base_url}/2010-04-01/Accounts/{tw.account_sid}/IncomingPhoneNumbers.json"
        async with httpx.AsyncClient(trust_env=False) as http:
            listed = (await http.get(url, auth=(tw.account_sid, tw.auth_token))).json()
            refused = await http.get(url, auth=(tw.account_sid, "wrong"))
    numbers = sorted(n["phone_number"] for n in listed["incoming_phone_numbers"])
    assert numbers == list(inprocess.NUMBERS)
    assert refused.status_code == 401


async def test_an_exposed_bridge_gets_no_emulated_twilio() -> None:
    env = {**LOOPBACK, "BRIDGE_HOST": "0.0.0.0", "BRIDGE_VALIDATE_TWILIO_SIGNATURES": "false"}
    async with prepare(load_config(env=env)) as (effective, _app):
        assert effective.twilio.account_sid is None and effective.twilio.auth_token is None
        assert effective.platform.base_url is not None  # the platform emulator still runs
