"""The stack's pieces that need no bridge: config it writes, failure reporting, numbers."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest

from bridge.config import load_config
from bridge.loadtest.params import AGENT_FORMATS
from bridge.loadtest.scenario import BEHAVIOURS
from bridge.loadtest.stack import (
    StackError,
    _child_env,
    _spawn,
    _wait_ready,
    bridge_config,
    free_port,
    number_for,
    stop_child,
)


def test_generated_config_is_valid_for_the_bridge(tmp_path):
    text = bridge_config(
        18080,
        "http://127.0.0.1:18081",
        "key456",
        "tok123",
        tmp_path / "b.db",
        {"+15552000002": "agent_a", "+15552010002": "agent_b"},
    )
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    cfg = load_config(path, env={})
    assert cfg.server.port == 18080 and cfg.public_url == "http://127.0.0.1:18080"
    assert cfg.platform.base_url == "http://127.0.0.1:18081" and cfg.platform.api_key == "key456"
    assert cfg.twilio.signatures_enforced and cfg.twilio.auth_token == "tok123"
    assert cfg.twilio.api_base_url.startswith("http://127.0.0.1")
    assert {(r.number, r.agent_id) for r in cfg.routes} == {
        ("+15552000002", "agent_a"),
        ("+15552010002", "agent_b"),
    }


def test_numbers_are_distinct_e164_per_behaviour_and_format():
    numbers = {number_for(k, f) for k in BEHAVIOURS for f in AGENT_FORMATS}
    assert len(numbers) == len(BEHAVIOURS) * len(AGENT_FORMATS)
    assert all(n.startswith("+1555") and len(n) == 12 for n in numbers)


def test_free_port_is_bindable():
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


async def test_a_child_that_dies_at_start_up_is_reported_with_its_log(tmp_path):
    log = tmp_path / "child.log"
    proc = await _spawn(
        "x", [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"], log
    )
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(StackError, match=r"(?s)exited with status 3.*boom: bad config"):
            await _wait_ready(proc, "the bridge", f"http://127.0.0.1:{free_port()}/", log, client)


async def test_stop_terminates_a_running_child(tmp_path):
    proc = await _spawn(
        "x", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "c.log"
    )
    await asyncio.wait_for(stop_child(proc), 15)
    assert proc.returncode is not None and proc.returncode != 0


def test_the_bridge_child_gets_the_call_cap_of_the_run_and_nothing_inherited(monkeypatch):
    monkeypatch.setenv("BRIDGE_MAX_CONCURRENT_CALLS", "3")  # the operator's shell setting
    env = _child_env({"BRIDGE_MAX_CONCURRENT_CALLS": "100"})
    assert env["BRIDGE_MAX_CONCURRENT_CALLS"] == "100"
    assert "BRIDGE_MAX_CONCURRENT_CALLS" not in _child_env()
