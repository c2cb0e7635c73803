from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import load_config, ws_url_for
from bridge.errors import ConfigError


def test_defaults() -> None:
    cfg = load_config(env={})
    assert cfg.server.port == 8080
    assert cfg.platform.base_url is None
    assert cfg.twilio.api_base_url == "https://api.twilio.com"
    assert cfg.twilio.signatures_enforced is False
    assert cfg.public_url == "http://127.0.0.1:8080"


def test_environment_overrides_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n')
    cfg = load_config(f, env={"BRIDGE_PORT": "9100"})
    assert cfg.server.port == 9100
    assert cfg.server.host == "0.0.0.0"


def test_env_variables_honoured() -> None:
    env = {
        "ELEVENLABS_API_KEY": "xi-secret",
        "ELEVENLABS_BASE_URL": "https://api.elevenlabs.io",
        "BRIDGE_DEFAULT_AGENT_ID": "agent_1",
        "TWILIO_ACCOUNT_SID": "AC123",
        "TWILIO_AUTH_TOKEN": "tok-secret",
        "TWILIO_API_BASE_URL": "http://127.0.0.1:9",
        "BRIDGE_PUBLIC_URL": "https://bridge.example.com/",
        "BRIDGE_ADMIN_TOKEN": "adm-secret",
        "BRIDGE_HOST": "0.0.0.0",
        "BRIDGE_PORT": "8443",
        "BRIDGE_DB": "/tmp/x.db",
        "BRIDGE_VALIDATE_TWILIO_SIGNATURES": "false",
    }
    cfg = load_config(env=env)
    assert cfg.platform.api_key == "xi-secret"
    assert cfg.platform.ws_base_url == "wss://api.elevenlabs.io"
    assert cfg.platform.default_agent_id == "agent_1"
    assert cfg.twilio.account_sid == "AC123"
    assert cfg.twilio.auth_token == "tok-secret"
    assert cfg.twilio.api_base_url == "http://127.0.0.1:9"
    assert cfg.public_url == "https://bridge.example.com"
    assert cfg.admin.token == "adm-secret"
    assert (cfg.server.host, cfg.server.port) == ("0.0.0.0", 8443)
    assert cfg.store.db == "/tmp/x.db"
    assert cfg.twilio.signatures_enforced is False
    # Validation defaults to on once a token is present.
    env.pop("BRIDGE_VALIDATE_TWILIO_SIGNATURES")
    assert load_config(env=env).twilio.signatures_enforced is True


def test_secrets_never_in_repr() -> None:
    cfg = load_config(
        env={
            "ELEVENLABS_API_KEY": "xi-secret",
            "TWILIO_AUTH_TOKEN": "tok-secret",
            "BRIDGE_ADMIN_TOKEN": "adm-secret",
        }
    )
    text = repr(cfg) + str(cfg)
    for secret in ("xi-secret", "tok-secret", "adm-secret"):
        assert secret not in text


@pytest.mark.parametrize(
    ("env", "key", "source"),
    [
        ({"BRIDGE_PORT": "eighty"}, "server.port", "BRIDGE_PORT"),
        ({"BRIDGE_PORT": "70000"}, "server.port", "BRIDGE_PORT"),
        ({"BRIDGE_PUBLIC_URL": "bridge.example.com"}, "server.public_url", "BRIDGE_PUBLIC_URL"),
        ({"ELEVENLABS_BASE_URL": "ftp://x"}, "platform.base_url", "ELEVENLABS_BASE_URL"),
        ({"TWILIO_ACCOUNT_SID": "XX1"}, "twilio.account_sid", "TWILIO_ACCOUNT_SID"),
        ({"BRIDGE_VALIDATE_TWILIO_SIGNATURES": "maybe"}, "twilio.validate_signatures", None),
        ({"BRIDGE_VALIDATE_TWILIO_SIGNATURES": "true"}, "twilio.validate_signatures", None),
        ({"BRIDGE_LOG_LEVEL": "loud"}, "log.level", "BRIDGE_LOG_LEVEL"),
    ],
)
def test_bad_env_value_names_the_key(env: dict[str, str], key: str, source: str | None) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(env=env)
    msg = str(ei.value)
    assert ei.value.key == key
    assert msg.startswith(f"config {key}")
    assert "expected" in msg
    assert "\n" not in msg
    if source:
        assert source in msg


def test_secret_value_not_echoed_in_error(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[admin]\ntoken = 12345678\n")
    with pytest.raises(ConfigError) as ei:
        load_config(f, env={})
    assert "12345678" not in str(ei.value)
    assert ei.value.key == "admin.token"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[sever]\nport = 1\n", "sever"),
        ('[server]\nport = "80"\n', "server.port"),
        ('[[routes]]\nnumber = "4155550100"\nagent_id = "a"\n', "routes[0].number"),
        ('[[routes]]\nnumber = "+14155550100"\n', "routes[0].agent_id"),
        ('[calls]\non_agent_failure = "explode"\n', "calls.on_agent_failure"),
    ],
)
def test_bad_file_value_names_the_key(tmp_path: Path, toml: str, key: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as ei:
        load_config(f, env={})
    assert ei.value.key == key
    assert str(f) in str(ei.value)


def test_routes_from_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        '[[routes]]\nnumber = "+14155550100"\nagent_id = "a1"\n'
        '[[routes]]\nnumber = "+14155550101"\nagent_id = "a2"\n'
    )
    cfg = load_config(f, env={})
    assert [(r.number, r.agent_id) for r in cfg.routes] == [
        ("+14155550100", "a1"),
        ("+14155550101", "a2"),
    ]


def test_missing_and_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


def test_config_path_from_env(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[server]\nport = 9001\n")
    assert load_config(env={"BRIDGE_CONFIG": str(f)}).server.port == 9001


def test_ws_url_derivation() -> None:
    assert ws_url_for("https://api.elevenlabs.io") == "wss://api.elevenlabs.io"
    assert ws_url_for("http://127.0.0.1:9000") == "ws://127.0.0.1:9000"
