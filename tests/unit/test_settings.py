"""Settings are read once from the environment and fail fast, naming the variable, on bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ConfigurationError
from shared.settings import Settings


def test_environment_values_are_read_and_normalised() -> None:
    """Every documented variable reaches the frozen settings object, keys trimmed and split."""
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "RISK_MODEL_DIR": "/m",
            "RISK_STATE_URL": "redis://r:6379/1",
            "RISK_API_KEYS": " a , b,,",
            "RISK_PSEUDONYM_KEY": "secret",
            "RISK_LOG_LEVEL": "debug",
            "RISK_MAX_BATCH_EVENTS": "20",
        }
    )
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert settings.model_dir == Path("/m")
    assert settings.api_keys == ("a", "b") and settings.auth_required
    assert settings.pseudonym_key == b"secret" and settings.log_level == "DEBUG"
    assert settings.max_batch_events == 20
    with pytest.raises(AttributeError):
        settings.log_level = "INFO"  # type: ignore[misc]


def test_defaults_match_the_documented_contract() -> None:
    """Without variables: the loopback broker, no auth, the embedded state store."""
    settings = Settings.from_env({})
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert not settings.auth_required
    assert settings.state_url.startswith("sqlite:///")


def test_secrets_are_not_in_the_repr() -> None:
    """Printing settings (e.g. in a crash report) does not print API keys or the pseudonym key."""
    text = repr(Settings.from_env({"RISK_API_KEYS": "topsecret", "RISK_PSEUDONYM_KEY": "hushhush"}))
    assert "topsecret" not in text and "hushhush" not in text


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RISK_MAX_BATCH_EVENTS", "many"),
        ("RISK_MAX_BATCH_EVENTS", "0"),
        ("RISK_STATE_URL", "memcached://x"),
        ("RISK_LOG_LEVEL", "LOUD"),
        ("KAFKA_BOOTSTRAP_SERVERS", " "),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(variable: str, value: str) -> None:
    """A wrong value stops start-up with the variable's name in the message."""
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env({variable: value})
