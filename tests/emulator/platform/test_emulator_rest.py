"""The emulator's REST API over a real loopback socket: paths, status codes, exact bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fixtures.platform_emulator import PlatformEmulator

TWILIO = {
    "phone_number": "+14155550100",
    "label": "main line",
    "sid": "AC00000000000000000000000000000000",
    "token": "secret-token",
}


@pytest.fixture
async def http(platform_emulator: PlatformEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=platform_emulator.http_url, headers={"xi-api-key": platform_emulator.api_key}
    ) as client:
        yield client


async def test_auth_missing_and_wrong_key(platform_emulator: PlatformEmulator) -> None:
    async with httpx.AsyncClient(base_url=platform_emulator.http_url) as raw:
        r = await raw.get("/v1/convai/phone-numbers")
        assert r.status_code == 401
        assert r.json() == {
            "detail": {"status": "invalid_api_key", "message": "missing the xi-api-key header"}
        }
        r = await raw.get("/v1/convai/settings", headers={"xi-api-key": "wrong"})
        assert r.status_code == 401 and r.json()["detail"]["message"] == "invalid API key"
        assert r.headers["request-id"].startswith("req_")
        r = await raw.get("/emulator/conversations")
        assert r.status_code == 401


async def test_twilio_number_crud(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/convai/phone-numbers", json={**TWILIO, "provider": "twilio"})
    assert r.status_code == 200
    pid = r.json()["phone_number_id"]
    assert r.json() == {"phone_number_id": pid}

    r = await http.get(f"/v1/convai/phone-numbers/{pid}")
    assert r.json() == {
        "provider": "twilio",
        "phone_number": "+14155550100",
        "label": "main line",
        "phone_number_id": pid,
        "supports_inbound": True,
        "supports_outbound": True,
        "assigned_agent": None,
    }
    r = await http.patch(
        f"/v1/convai/phone-numbers/{pid}", json={"agent_id": "agent_emulator_echo"}
    )
    assert r.status_code == 200
    assert r.json()["assigned_agent"] == {
        "agent_id": "agent_emulator_echo",
        "agent_name": "Emulator echo",
    }
    listed = (await http.get("/v1/convai/phone-numbers")).json()
    assert [p["phone_number_id"] for p in listed] == [pid]
    assert "secret-token" not in (await http.get("/v1/convai/phone-numbers")).text
    r = await http.patch(f"/v1/convai/phone-numbers/{pid}", json={"agent_id": None})
    assert r.json()["assigned_agent"] is None
    r = await http.delete(f"/v1/convai/phone-numbers/{pid}")
    assert r.status_code == 200
    r = await http.get(f"/v1/convai/phone-numbers/{pid}")
    assert r.status_code == 404
    assert r.json() == {
        "detail": {"status": "phone_number_not_found", "message": f"phone number {pid!r} not found"}
    }


async def test_provider_is_inferred_without_the_field(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/convai/phone-numbers", json=TWILIO)
    assert r.status_code == 200
    sip = {
        "phone_number": "+14155550111",
        "label": "sip",
        "outbound_trunk_config": {"address": "sip.example.com"},
    }
    r = await http.post("/v1/convai/phone-numbers", json=sip)
    assert r.status_code == 200
    got = (await http.get(f"/v1/convai/phone-numbers/{r.json()['phone_number_id']}")).json()
    assert got["provider"] == "sip_trunk" and got["livekit_stack"] == "standard"
    assert got["outbound_trunk"] == {
        "address": "sip.example.com",
        "transport": "auto",
        "media_encryption": "allowed",
        "has_auth_credentials": False,
        "headers": {},
        "username": None,
        "has_outbound_trunk": True,
    }


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        (
            {"phone_number": "+14155550100", "label": "x", "provider": "twilio", "token": "t"},
            ["body", "sid"],
            "missing",
        ),
        ({**TWILIO, "label": 5}, ["body", "label"], "type_error"),
        ({**TWILIO, "phone_number": "4155550100"}, ["body", "phone_number"], "value_error"),
        ({**TWILIO, "provider": "exotel"}, ["body", "provider"], "value_error"),
        (
            {
                **TWILIO,
                "region_config": {"region_id": "mars", "token": "t", "edge_location": "tokyo"},
            },
            ["body", "region_config", "region_id"],
            "enum",
        ),
    ],
)
async def test_invalid_bodies_get_fastapi_422(
    http: httpx.AsyncClient, body: dict[str, Any], loc: list[Any], kind: str
) -> None:
    r = await http.post("/v1/convai/phone-numbers", json=body)
    assert r.status_code == 422
    (item,) = r.json()["detail"]
    assert item["loc"] == loc and item["type"] == kind and item["msg"]


async def test_malformed_and_empty_json(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/convai/phone-numbers", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = await http.post("/v1/convai/agents/create", content=b"")
    assert r.status_code == 422 and r.json()["detail"][0] == {
        "loc": ["body"],
        "msg": "Field required",
        "type": "missing",
    }


async def test_duplicate_number_and_unknown_agent(http: httpx.AsyncClient) -> None:
    pid = (await http.post("/v1/convai/phone-numbers", json=TWILIO)).json()["phone_number_id"]
    r = await http.post("/v1/convai/phone-numbers", json=TWILIO)
    assert r.status_code == 400 and r.json()["detail"]["status"] == "invalid_phone_number"
    r = await http.patch(f"/v1/convai/phone-numbers/{pid}", json={"agent_id": "agent_ghost"})
    assert r.status_code == 404 and r.json()["detail"]["status"] == "agent_not_found"


async def test_agent_create_get_list(http: httpx.AsyncClient) -> None:
    body = {
        "name": "Support",
        "tags": ["a"],
        "conversation_config": {
            "asr": {"user_input_audio_format": "ulaw_8000", "keywords": ["bridge"]},
            "turn": {"turn_timeout": 7},
            "agent": {
                "first_message": "Hi!",
                "prompt": {
                    "prompt": "be nice",
                    "llm": "gpt-4o-mini",
                    "tools": [
                        {
                            "type": "client",
                            "name": "transfer_call",
                            "description": "transfer",
                            "expects_response": True,
                        }
                    ],
                },
            },
        },
        "platform_settings": {"auth": {"enable_auth": True}, "call_limits": {"daily_limit": 5}},
    }
    r = await http.post("/v1/convai/agents/create", json=body)
    assert r.status_code == 200
    aid = r.json()["agent_id"]
    got = (await http.get(f"/v1/convai/agents/{aid}")).json()
    cc = got["conversation_config"]
    assert cc["asr"] == {"user_input_audio_format": "ulaw_8000", "keywords": ["bridge"]}
    assert cc["tts"] == {"agent_output_audio_format": "pcm_16000"}
    assert cc["turn"] == {"turn_timeout": 7}
    assert (
        cc["agent"]["prompt"]["tools"][0]
        == body["conversation_config"]["agent"]["prompt"]["tools"][0]
    )  # type: ignore[index]
    assert got["platform_settings"] == {
        "auth": {"enable_auth": True},
        "call_limits": {"daily_limit": 5},
    }
    assert got["metadata"]["created_at_unix_secs"] > 0
    page = (await http.get("/v1/convai/agents", params={"page_size": 1})).json()
    assert page["agents"][0]["agent_id"] == aid and page["has_more"] is True
    assert page["agents"][0]["access_info"]["role"] == "admin"
    r = await http.get("/v1/convai/agents", params={"page_size": "many"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "page_size"]


async def test_agent_create_rejects_bad_formats_and_behaviour(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/convai/agents/create",
        json={"conversation_config": {"tts": {"agent_output_audio_format": "mp3_44100"}}},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == [
        "body",
        "conversation_config",
        "tts",
        "agent_output_audio_format",
    ]
    r = await http.post(
        "/v1/convai/agents/create",
        json={"conversation_config": {"agent": {"emulator": {"mode": "sing"}}}},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == [
        "body",
        "conversation_config",
        "agent",
        "emulator",
        "mode",
    ]
    r = await http.post("/v1/convai/agents/create", json={"name": "no config"})
    assert r.json()["detail"][0] == {
        "loc": ["body", "conversation_config"],
        "msg": "Field required",
        "type": "missing",
    }


async def test_signed_url(http: httpx.AsyncClient, platform_emulator: PlatformEmulator) -> None:
    r = await http.get(
        "/v1/convai/conversation/get-signed-url", params={"agent_id": "agent_emulator_private"}
    )
    url = r.json()["signed_url"]
    assert url.startswith(
        f"{platform_emulator.ws_url}/v1/convai/conversation?agent_id=agent_emulator_private&token="
    )
    r = await http.get("/v1/convai/conversation/get-signed-url")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "agent_id"]
    r = await http.get("/v1/convai/conversation/get-signed-url", params={"agent_id": "agent_nope"})
    assert r.status_code == 404


async def test_settings_and_secrets(http: httpx.AsyncClient) -> None:
    s = (await http.get("/v1/convai/settings")).json()
    assert s == {
        "conversation_initiation_client_data_webhook": None,
        "webhooks": {},
        "can_use_mcp_servers": False,
        "rag_retention_period_days": 10,
        "default_livekit_stack": "standard",
    }
    r = await http.patch(
        "/v1/convai/settings", json={"webhooks": {"events": ["transcript"], "send_audio": False}}
    )
    assert r.json()["webhooks"] == {"events": ["transcript"], "send_audio": False}
    r = await http.patch("/v1/convai/settings", json={"webhooks": {"events": ["nonsense"]}})
    assert r.status_code == 422

    r = await http.post("/v1/convai/secrets", json={"type": "new", "name": "k", "value": "hunter2"})
    created = r.json()
    assert created["type"] == "stored" and created["name"] == "k" and "value" not in created
    r = await http.post("/v1/convai/secrets", json={"name": "k2", "value": "v"})
    assert r.status_code == 422  # "type" is required by the seed
    listed = (await http.get("/v1/convai/secrets")).json()
    assert listed == {
        "secrets": [
            {
                "type": "stored",
                "secret_id": created["secret_id"],
                "name": "k",
                "used_by": {"tools": [], "agents": [], "others": [], "phone_numbers": []},
            }
        ]
    }
    r = await http.patch(
        f"/v1/convai/secrets/{created['secret_id']}",
        json={"type": "update", "name": "k", "value": "new"},
    )
    assert r.status_code == 200 and r.json()["secret_id"] == created["secret_id"]
    assert "hunter2" not in (await http.get("/v1/convai/secrets")).text


async def test_widget_and_avatar_upload(http: httpx.AsyncClient) -> None:
    w = (await http.get("/v1/convai/agents/agent_emulator_echo/widget")).json()
    assert w["agent_id"] == "agent_emulator_echo" and w["widget_config"]["language"] == "en"
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    r = await http.post(
        "/v1/convai/agents/agent_emulator_echo/avatar",
        files={"avatar_file": ("a.png", png, "image/png")},
    )
    assert r.status_code == 200
    url = r.json()["avatar_url"]
    assert r.json() == {"agent_id": "agent_emulator_echo", "avatar_url": url}
    async with httpx.AsyncClient() as anonymous:  # the image itself is public, like a CDN URL
        img = await anonymous.get(url)
    assert img.content == png and img.headers["content-type"] == "image/png"
    w = (await http.get("/v1/convai/agents/agent_emulator_echo/widget")).json()
    assert w["widget_config"]["avatar"] == {"type": "image", "url": url}
    r = await http.post(
        "/v1/convai/agents/agent_emulator_echo/avatar", files={"other": ("a.png", png, "image/png")}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "avatar_file"]


async def test_test_invocations_pagination(
    http: httpx.AsyncClient, platform_emulator: PlatformEmulator
) -> None:
    for i in range(3):
        r = await http.post(
            "/emulator/test-invocations",
            json={"agent_id": "agent_emulator_echo", "title": f"t{i}", "passed": 1},
        )
        assert r.status_code == 200
    page = (
        await http.get(
            "/v1/convai/test-invocations",
            params={"agent_id": "agent_emulator_echo", "page_size": 2},
        )
    ).json()
    assert [x["title"] for x in page["results"]] == ["t2", "t1"] and page["has_more"] is True
    nxt = (
        await http.get(
            "/v1/convai/test-invocations",
            params={
                "agent_id": "agent_emulator_echo",
                "cursor": page["next_cursor"],
                "page_size": 2,
            },
        )
    ).json()
    assert (
        [x["title"] for x in nxt["results"]] == ["t0"]
        and nxt["has_more"] is False
        and nxt["next_cursor"] is None
    )
    r = await http.get(
        "/v1/convai/test-invocations", params={"agent_id": "agent_emulator_echo", "page_size": 101}
    )
    assert r.status_code == 422
    r = await http.get("/v1/convai/test-invocations")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "agent_id"]


async def test_injected_faults(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/emulator/faults",
        json={
            "path_prefix": "/v1/convai/settings",
            "status": 503,
            "times": 2,
            "retry_after_s": 0.5,
        },
    )
    assert r.status_code == 200
    for _ in range(2):
        r = await http.get("/v1/convai/settings")
        assert r.status_code == 503 and r.headers["retry-after"] == "0.5"
        assert r.json()["detail"]["status"] == "injected_fault"
    assert (await http.get("/v1/convai/settings")).status_code == 200
    await http.post("/emulator/faults", json={"path_prefix": "/v1/", "status": 500, "times": 5})
    await http.delete("/emulator/faults")
    assert (await http.get("/v1/convai/settings")).status_code == 200
    r = await http.post("/emulator/faults", json={"path_prefix": "/", "status": 200})
    assert r.status_code == 422


async def test_unknown_conversation_and_uncaptured_audio(http: httpx.AsyncClient) -> None:
    assert (await http.get("/emulator/conversations")).json() == []
    r = await http.get("/emulator/conversations/conv_nope")
    assert r.status_code == 404 and r.json()["detail"]["status"] == "conversation_not_found"
