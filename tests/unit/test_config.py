"""ingester.config: defaults, TOML loading, environment overrides, and the errors a typo must produce."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingester import config
from ingester.config import Settings, build, load
from ingester.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ingester.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_build_from_an_empty_mapping() -> None:
    settings = build({})

    assert settings == Settings()
    assert settings.kafka.topic == "cloudtrail"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.collection.poll_interval_seconds == config.DEFAULT_POLL_INTERVAL_SECONDS == 300
    assert settings.collection.lookback_seconds == config.DEFAULT_LOOKBACK_SECONDS == 3 * 3600
    assert settings.discovery.regions == ()
    assert settings.sink.format == "ocsf"
    assert settings.start_datetime() is None


def test_load_without_file_or_environment_gives_the_defaults() -> None:
    assert load(None, environ={}) == Settings()


def test_toml_file_is_loaded(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        [kafka]
        topic = "audit"
        bootstrap_servers = "k1:9092,k2:9092"
        linger_ms = 5

        [discovery]
        mode = "organization"
        regions = ["us-east-1", "eu-west-1"]

        [collection]
        start_time = "2024-03-01T12:30:00Z"

        [sink.file]
        path = "/var/lib/ingester/out.ndjson"
        """,
    )

    settings = load(path, environ={})

    assert settings.kafka.topic == "audit"
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.kafka.linger_ms == 5
    assert settings.discovery.mode == "organization"
    assert settings.discovery.regions == ("us-east-1", "eu-west-1")
    assert settings.sink.file.path == "/var/lib/ingester/out.ndjson"
    assert settings.start_datetime() == datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    # Untouched sections keep their defaults.
    assert settings.checkpoint == Settings().checkpoint


def test_typo_in_a_key_names_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '[kafka]\ntopc = "x"\n')

    with pytest.raises(ConfigError, match="topc") as caught:
        load(path, environ={})

    assert "kafka" in str(caught.value)


def test_an_invalid_choice_lists_the_allowed_values(tmp_path: Path) -> None:
    path = _write(tmp_path, '[sink]\nformat = "json"\n')

    with pytest.raises(ConfigError) as caught:
        load(path, environ={})

    assert str(caught.value) == (
        f"invalid configuration: sink.format: Invalid enum value 'json' (in {path}; allowed: 'native', 'ocsf', 'raw')"
    )


def test_a_bad_environment_value_says_it_came_from_the_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, '[kafka]\ncompression = "zstd"\n')

    with pytest.raises(ConfigError) as caught:
        load(path, environ={"INGESTER_KAFKA__COMPRESSION": "brotli"})

    message = str(caught.value)
    assert "kafka.compression" in message
    assert "from the environment: INGESTER_KAFKA__COMPRESSION" in message
    assert str(path) not in message


def test_an_unknown_key_from_the_environment_names_the_variable_and_a_near_miss() -> None:
    with pytest.raises(ConfigError) as caught:
        load(None, environ={"INGESTER_KAFKAA__TOPIC": "x", "INGESTER_KAFKA__TOPIC": "y"})

    assert str(caught.value) == (
        "invalid configuration: kafkaa: Object contains unknown field `kafkaa` "
        "(from the environment: INGESTER_KAFKAA__TOPIC; did you mean kafka?)"
    )


def test_a_typo_in_the_file_suggests_the_setting(tmp_path: Path) -> None:
    path = _write(tmp_path, "[collection]\nworkerz = 2\n")

    with pytest.raises(ConfigError, match=r"collection\.workerz: .*did you mean collection\.workers\?"):
        load(path, environ={})


def test_unknown_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match="kafak"):
        build({"kafak": {"topic": "x"}})


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"kafka": {"topic": 5}}, "kafka.topic"),
        ({"kafka": {"linger_ms": "soon"}}, "kafka.linger_ms"),
        ({"discovery": {"regions": "us-east-1"}}, "discovery.regions"),
        ({"discovery": {"mode": "galaxy"}}, "discovery.mode"),
        ({"collection": {"poll_interval_seconds": 0}}, "collection.poll_interval_seconds"),
        ({"discovery": {"role_session_seconds": 60}}, "discovery.role_session_seconds"),
    ],
)
def test_wrong_type_or_value_raises_config_error_naming_the_path(data: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(data)

    assert str(caught.value).startswith(f"invalid configuration: {where}: ")


def test_wrong_type_in_toml_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[collection]\nmax_attempts = [1, 2]\n")

    with pytest.raises(ConfigError, match=r"collection\.max_attempts"):
        load(path, environ={})


def test_missing_file_raises_config_error_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(ConfigError, match=r"absent\.toml"):
        load(path, environ={})


def test_invalid_toml_raises_config_error_with_the_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "[kafka\ntopic = 1\n")

    with pytest.raises(ConfigError, match=r"ingester\.toml"):
        load(path, environ={})


def test_environment_overrides_file_and_converts_types(tmp_path: Path) -> None:
    path = _write(tmp_path, '[kafka]\ntopic = "from-file"\nlinger_ms = 7\n')

    settings = load(
        path,
        environ={
            "INGESTER_KAFKA__TOPIC": "from-env",
            "INGESTER_COLLECTION__POLL_INTERVAL_SECONDS": "60",
            "INGESTER_DISCOVERY__REGIONS": "us-east-1,eu-west-1",
            "INGESTER_SINK__FILE__PATH": "/tmp/out.ndjson",
            # Not ours: no prefix, or no section separator.
            "KAFKA__TOPIC": "ignored",
            "INGESTER_TOPIC": "ignored",
        },
    )

    assert settings.kafka.topic == "from-env"
    assert settings.kafka.linger_ms == 7  # from the file, not overridden
    assert settings.collection.poll_interval_seconds == 60
    assert isinstance(settings.collection.poll_interval_seconds, int)
    assert settings.discovery.regions == ("us-east-1", "eu-west-1")
    assert settings.sink.file.path == "/tmp/out.ndjson"


def test_environment_typo_names_the_key() -> None:
    with pytest.raises(ConfigError, match="topc"):
        load(None, environ={"INGESTER_KAFKA__TOPC": "x"})


def test_environment_value_of_wrong_type_raises() -> None:
    with pytest.raises(ConfigError, match=r"collection\.poll_interval_seconds"):
        load(None, environ={"INGESTER_COLLECTION__POLL_INTERVAL_SECONDS": "five minutes"})


def test_environment_single_region_becomes_a_one_element_tuple() -> None:
    settings = load(None, environ={"INGESTER_DISCOVERY__REGIONS": "us-east-1"})

    assert settings.discovery.regions == ("us-east-1",)


def test_environment_comma_separated_bootstrap_servers_stay_a_string() -> None:
    settings = load(None, environ={"INGESTER_KAFKA__BOOTSTRAP_SERVERS": "b1:9092,b2:9092"})

    assert settings.kafka.bootstrap_servers == "b1:9092,b2:9092"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T12:30:00Z", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
        ("2024-03-01T14:30:00+02:00", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
    ],
)
def test_start_time_forms(text: str, expected: datetime) -> None:
    settings = build({"collection": {"start_time": text}})

    assert settings.start_datetime() == expected
    assert settings.start_datetime().tzinfo is UTC  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "01/03/2024", "2024-03-01T25:00:00Z"])
def test_invalid_start_time_raises(text: str) -> None:
    with pytest.raises(ConfigError, match=r"collection\.start_time") as caught:
        build({"collection": {"start_time": text}})

    assert repr(text) in str(caught.value)


def test_max_batch_bytes_above_max_request_bytes_raises() -> None:
    with pytest.raises(ConfigError, match=r"max_batch_bytes.*max_request_bytes"):
        build({"kafka": {"max_batch_bytes": 2 * 1024 * 1024, "max_request_bytes": 1024 * 1024}})


def test_max_batch_bytes_equal_or_below_max_request_bytes_is_accepted() -> None:
    settings = build({"kafka": {"max_batch_bytes": 512 * 1024, "max_request_bytes": 512 * 1024}})

    assert settings.kafka.max_batch_bytes == 512 * 1024


def test_settings_are_immutable() -> None:
    settings = build({})

    with pytest.raises(AttributeError):
        settings.kafka.topic = "other"  # type: ignore[misc]
