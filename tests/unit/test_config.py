"""Configuration: env names follow the settings tree; bad values fail fast with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomstream import cli, config
from anomstream.errors import ConfigError


def test_nested_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """ANOMSTREAM_KAFKA__GROUP_ID and ANOMSTREAM_TOPICS__EVENTS reach the settings tree."""
    monkeypatch.setenv("ANOMSTREAM_KAFKA__GROUP_ID", "g7")
    monkeypatch.setenv("ANOMSTREAM_TOPICS__EVENTS", "in")
    settings, _ = config.load()
    assert (settings.kafka.group_id, settings.topics.events) == ("g7", "in")


def test_plain_kafka_bootstrap_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """KAFKA_BOOTSTRAP_SERVERS works, but the ANOMSTREAM_ name wins when both are set."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "a:1")
    assert config.load()[0].kafka.bootstrap_servers == "a:1"
    monkeypatch.setenv("ANOMSTREAM_KAFKA__BOOTSTRAP_SERVERS", "b:2")
    assert config.load()[0].kafka.bootstrap_servers == "b:2"


def test_invalid_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value raises ConfigError naming the field and its env variable."""
    monkeypatch.setenv("ANOMSTREAM_WORKER__BATCH_SIZE", "-3")
    with pytest.raises(ConfigError, match="ANOMSTREAM_WORKER__BATCH_SIZE"):
        config.load()


def test_cli_exits_2_on_invalid_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI reports invalid configuration on stderr with exit code 2, before any client exists."""
    monkeypatch.setenv("ANOMSTREAM_KAFKA__SECURITY_PROTOCOL", "CARRIER_PIGEON")
    monkeypatch.setenv("ANOMSTREAM_KAFKA__BOOTSTRAP_SERVERS", "unreachable.invalid:1")
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert "kafka.security_protocol" in err
    assert "ANOMSTREAM_KAFKA__SECURITY_PROTOCOL" in err


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """show-config output never contains a secret's value."""
    monkeypatch.setenv("ANOMSTREAM_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("ANOMSTREAM_STATE__HMAC_KEY", "s3cret-key")
    settings, _ = config.load()
    text = str(config.masked(settings))
    assert "hunter2" not in text
    assert "s3cret-key" not in text
    assert settings.kafka.client_config()["sasl.password"] == "hunter2"


def test_bad_detector_spec_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown detector in the TOML spec names the stream and field."""
    spec = tmp_path / "d.toml"
    spec.write_text('[streams.pay]\ndetector = "magic"\n')
    monkeypatch.setenv("ANOMSTREAM_DETECTORS_FILE", str(spec))
    with pytest.raises(ConfigError, match=r"streams\.pay\.detector"):
        config.load()
