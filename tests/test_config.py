"""Configuration: defaults, normalisation, and errors that name the bad variable."""

import pytest

from looker_audit_export.config import Config, ConfigError

GOOD = {
    "GOOGLE_CLOUD_PROJECT": "my-project",
    "LOOKER_BASE_URL": "https://example.looker.com/",
    "LOOKER_CREDENTIALS_SECRET": "projects/my-project/secrets/looker-api/versions/latest",
    "STATE_URI": "gs://my-bucket/looker/state.json",
}


def test_defaults_and_trailing_slash() -> None:
    config = Config.from_env(GOOD)
    assert config.looker_base_url == "https://example.looker.com"
    assert config.looker_host == "example.looker.com"
    assert config.log_resource_name == "projects/my-project/logs/looker_system_activity_logs"
    assert (config.initial_lookback_minutes, config.settle_seconds, config.looker_verify_ssl) == (10, 60, True)


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("GOOGLE_CLOUD_PROJECT", "", "GOOGLE_CLOUD_PROJECT is not set"),
    ("LOOKER_BASE_URL", "example.looker.com", "LOOKER_BASE_URL='example.looker.com' is invalid"),
    ("LOOKER_CREDENTIALS_SECRET", "looker-api", "LOOKER_CREDENTIALS_SECRET='looker-api' is invalid"),
    ("STATE_URI", "gs://bucket-only", "STATE_URI='gs://bucket-only' is invalid"),
    ("STATE_URI", "s3://bucket/state.json", "STATE_URI='s3://bucket/state.json' is invalid"),
    ("SETTLE_SECONDS", "soon", "SETTLE_SECONDS='soon' is invalid"),
    ("INITIAL_LOOKBACK_MINUTES", "0", "INITIAL_LOOKBACK_MINUTES=0 is out of range"),
    ("LOOKER_VERIFY_SSL", "maybe", "LOOKER_VERIFY_SSL='maybe' is invalid"),
    ("LOG_NAME", "bad name!", "LOG_NAME='bad name!' is invalid"),
    ("LOGGING_EMULATOR_HOST", "localhost", "LOGGING_EMULATOR_HOST='localhost' is invalid"),
    ("WRITE_BATCH_ENTRIES", "2000", "WRITE_BATCH_ENTRIES=2000 is out of range"),  # at most 1,000 per request
    ("LOOKER_QUERY_TIMEZONE", "EST5", "LOOKER_QUERY_TIMEZONE='EST5' is invalid: it must be an IANA time zone"),
])
def test_bad_variable_is_named(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace("?", r"\?")):
        Config.from_env({**GOOD, name: value})


def test_missing_secret_variable_is_named() -> None:
    env = {k: v for k, v in GOOD.items() if k != "LOOKER_CREDENTIALS_SECRET"}
    with pytest.raises(ConfigError, match="LOOKER_CREDENTIALS_SECRET is not set"):
        Config.from_env(env)


def test_local_runs_need_no_secret_or_state() -> None:
    env = {"GOOGLE_CLOUD_PROJECT": "my-project", "LOOKER_BASE_URL": "https://example.looker.com"}
    config = Config.from_env(env, local=True)
    assert config.credentials_secret is None and config.state_uri is None
