from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import load_config, ws_url_for
from bridge.errors import ConfigError

ADMIN_TOKEN = "adm-secret-0123456789abcdefghijklmnop"  # 32+ characters


def test_defaults() -> None:
    cfg = load_config(env={})
    assert cfg.server.port == 8080
    assert cfg.platform.base_url is None
    assert cfg.twilio.api_base_url == "https://api.twilio.com"
    assert cfg.twilio.signatures_enforced is False
    assert cfg.public_url == "http://127.0.0.1:8080"


def test_environment_overrides_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[twilio]\nauth_token = "tok"\n')
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
        "BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
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
    assert cfg.admin.token == ADMIN_TOKEN
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
            "BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
        }
    )
    text = repr(cfg) + str(cfg)
    for secret in ("xi-secret", "tok-secret", ADMIN_TOKEN):
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


# ---------------------------------------------------------------------------- insecure settings

GOOD_SECRET = "s" * 32


@pytest.mark.parametrize(
    ("env", "where"),
    [
        ({"BRIDGE_PUBLIC_URL": "https://bridge.example.com"}, "BRIDGE_PUBLIC_URL"),
        ({"BRIDGE_PUBLIC_URL": "http://bridge.internal:8080"}, "BRIDGE_PUBLIC_URL"),
        ({"BRIDGE_PUBLIC_URL": "http://10.0.0.5:8080"}, "BRIDGE_PUBLIC_URL"),
        ({"BRIDGE_PUBLIC_URL": "https://127.0.0.1"}, "BRIDGE_PUBLIC_URL"),  # https: a proxy
        ({"BRIDGE_HOST": "0.0.0.0"}, "BRIDGE_HOST"),  # the fallback http://0.0.0.0:8080
        ({"BRIDGE_HOST": "::"}, "BRIDGE_HOST"),
        # A loopback public URL does not hide a listener on every interface.
        ({"BRIDGE_PUBLIC_URL": "http://127.0.0.1:8080", "BRIDGE_HOST": "0.0.0.0"}, "BRIDGE_HOST"),
        # Empty means unset, for the token as for every secret.
        ({"BRIDGE_PUBLIC_URL": "https://b.example.com", "TWILIO_AUTH_TOKEN": ""}, None),
        ({"BRIDGE_PUBLIC_URL": "https://b.example.com", "TWILIO_AUTH_TOKEN": "  "}, None),
        ({"BRIDGE_HOST": "0.0.0.0", "BRIDGE_VALIDATE_TWILIO_SIGNATURES": ""}, "BRIDGE_HOST"),
    ],
)
def test_exposed_without_an_auth_token_refuses_to_start(
    env: dict[str, str], where: str | None
) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(env=env)
    assert ei.value.key == "twilio.auth_token"
    msg = str(ei.value)
    assert "BRIDGE_VALIDATE_TWILIO_SIGNATURES=false" in msg and "\n" not in msg
    if where:
        assert ei.value.source == where  # what exposes it, not "defaults"


def test_exposure_from_the_file_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[server]\npublic_url = "https://bridge.example.com"\n')
    with pytest.raises(ConfigError) as ei:
        load_config(f, env={})
    assert ei.value.key == "twilio.auth_token" and ei.value.source == str(f)
    assert "server.public_url https://bridge.example.com" in str(ei.value)


@pytest.mark.parametrize(
    "env",
    [
        {},  # loopback only: the dev default
        {"BRIDGE_PUBLIC_URL": "http://localhost:8080"},
        {"BRIDGE_PUBLIC_URL": "http://[::1]:8080", "BRIDGE_HOST": "::1"},
        {"BRIDGE_PUBLIC_URL": "http://127.0.0.2:8080", "BRIDGE_HOST": "127.0.0.2"},
    ],
)
def test_loopback_without_a_token_starts_with_signatures_off(env: dict[str, str]) -> None:
    assert load_config(env=env).twilio.signatures_enforced is False


def test_signatures_explicitly_off_may_be_exposed() -> None:
    cfg = load_config(
        env={
            "BRIDGE_PUBLIC_URL": "https://bridge.example.com",
            "BRIDGE_HOST": "0.0.0.0",
            "BRIDGE_VALIDATE_TWILIO_SIGNATURES": "false",
        }
    )
    assert cfg.twilio.signatures_enforced is False
    exposed = {"BRIDGE_PUBLIC_URL": "https://bridge.example.com", "TWILIO_AUTH_TOKEN": "t"}
    assert load_config(env=exposed).twilio.signatures_enforced is True


def test_validation_on_without_a_token_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[twilio]\nvalidate_signatures = true\nauth_token = ""\n')
    with pytest.raises(ConfigError) as ei:
        load_config(f, env={})
    assert ei.value.key == "twilio.validate_signatures" and ei.value.source == str(f)
    with pytest.raises(ConfigError) as ei:
        load_config(env={"BRIDGE_VALIDATE_TWILIO_SIGNATURES": "true", "TWILIO_AUTH_TOKEN": ""})
    assert ei.value.source == "BRIDGE_VALIDATE_TWILIO_SIGNATURES"


def test_empty_secrets_are_unset_in_toml_and_env(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        '[platform]\napi_key = ""\n[twilio]\nauth_token = ""\nstream_secret = ""\n'
        '[admin]\ntoken = ""\n'
    )
    cfg = load_config(f, env={})
    assert cfg.platform.api_key is None and cfg.twilio.auth_token is None
    assert cfg.twilio.stream_secret is None and cfg.twilio.stream_key is None
    assert cfg.admin.token is None
    assert cfg.twilio.signatures_enforced is False  # not "enforced with an empty key"
    env = {
        "ELEVENLABS_API_KEY": "",
        "TWILIO_AUTH_TOKEN": "",
        "BRIDGE_STREAM_SECRET": "",
        "BRIDGE_ADMIN_TOKEN": "",
    }
    cfg = load_config(env=env)
    assert cfg.platform.api_key is None and cfg.twilio.auth_token is None
    assert cfg.twilio.stream_secret is None and cfg.admin.token is None
    assert cfg.twilio.signatures_enforced is False


@pytest.mark.parametrize(
    ("key", "env_name", "table"),
    [
        ("admin.token", "BRIDGE_ADMIN_TOKEN", "admin"),
        ("twilio.stream_secret", "BRIDGE_STREAM_SECRET", "twilio"),
    ],
)
def test_short_admin_token_or_stream_secret_is_an_error(
    tmp_path: Path, key: str, env_name: str, table: str
) -> None:
    short = "hunter2-" + "q" * 23  # 31 characters
    with pytest.raises(ConfigError) as ei:
        load_config(env={env_name: short})
    msg = str(ei.value)
    assert ei.value.key == key and ei.value.source == env_name
    assert "31 characters" in msg and "secrets.token_urlsafe" in msg
    assert short not in msg and "hunter2" not in msg
    name = key.split(".")[1]
    f = tmp_path / "c.toml"
    f.write_text(f'[{table}]\n{name} = "{short}"\n')
    with pytest.raises(ConfigError) as ei:
        load_config(f, env={})
    assert ei.value.key == key and ei.value.source == str(f) and short not in str(ei.value)
    # 32 characters is enough.
    load_config(env={env_name: short + "q"})


def test_stream_key_is_the_secret_or_derived_from_the_auth_token() -> None:
    derived = load_config(env={"TWILIO_AUTH_TOKEN": "tok"}).twilio.stream_key
    assert derived is not None and derived != b"tok" and len(derived) == 32
    own = load_config(env={"TWILIO_AUTH_TOKEN": "tok", "BRIDGE_STREAM_SECRET": GOOD_SECRET})
    assert own.twilio.stream_key == GOOD_SECRET.encode()
