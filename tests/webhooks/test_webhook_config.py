"""[webhooks] configuration: refused early, naming the key, never showing the secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import load_config
from bridge.errors import ConfigError

SECRET = "whsec-0123456789abcdefghijklmnopqrstuv"  # 32+ characters
EXPOSED = {"BRIDGE_PUBLIC_URL": "https://bridge.example.com", "TWILIO_AUTH_TOKEN": "tok"}


def test_defaults_are_off() -> None:
    cfg = load_config(env={})
    assert cfg.webhooks.urls == () and cfg.webhooks.secret is None
    assert cfg.webhooks.retry_for_s == 86400.0


def test_urls_and_secret_from_the_environment() -> None:
    cfg = load_config(
        env={
            **EXPOSED,
            "BRIDGE_WEBHOOK_URLS": "https://a.example/hook, http://127.0.0.1:9000/h",
            "BRIDGE_WEBHOOK_SECRET": SECRET,
        }
    )
    assert cfg.webhooks.urls == ("https://a.example/hook", "http://127.0.0.1:9000/h")
    assert SECRET not in repr(cfg)


def test_urls_without_a_secret_fail_at_start() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(env={"BRIDGE_WEBHOOK_URLS": "http://127.0.0.1:9000/h"})
    assert e.value.key == "webhooks.secret"


def test_short_secret_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(
            env={"BRIDGE_WEBHOOK_URLS": "http://127.0.0.1:9/h", "BRIDGE_WEBHOOK_SECRET": "short12"}
        )
    assert e.value.key == "webhooks.secret" and "short12" not in str(e.value)
    assert "BRIDGE_WEBHOOK_SECRET" in str(e.value)


def test_not_a_url_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(env={"BRIDGE_WEBHOOK_URLS": "ftp://x", "BRIDGE_WEBHOOK_SECRET": SECRET})
    assert e.value.key == "webhooks.urls"


def test_plain_http_to_another_host_is_refused_when_exposed(tmp_path: Path) -> None:
    f = tmp_path / "b.toml"
    f.write_text(f'[webhooks]\nurls = ["http://crm.example.com/h"]\nsecret = "{SECRET}"\n')
    with pytest.raises(ConfigError) as e:
        load_config(f, env=EXPOSED)
    assert e.value.key == "webhooks.urls" and "crm.example.com" in str(e.value)
    # on a bridge only this machine reaches, plain http is the operator's choice
    assert load_config(f, env={}).webhooks.urls == ("http://crm.example.com/h",)
    # loopback receivers are fine either way
    f.write_text(f'[webhooks]\nurls = ["http://localhost:9000/h"]\nsecret = "{SECRET}"\n')
    assert load_config(f, env=EXPOSED).webhooks.urls == ("http://localhost:9000/h",)


def test_backoff_max_below_base_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "b.toml"
    f.write_text(
        '[webhooks]\nurls = ["http://127.0.0.1:9/h"]\n'
        f'secret = "{SECRET}"\nbackoff_base_s = 10.0\nbackoff_max_s = 5.0\n'
    )
    with pytest.raises(ConfigError) as e:
        load_config(f, env={})
    assert e.value.key == "webhooks.backoff_max_s"
