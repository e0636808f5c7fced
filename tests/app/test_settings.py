"""Settings: sources and their order, validation of every value, documentation."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from evidence.errors import ConfigError
from evidence.settings import CONFIG_ENV, Settings, env_var

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def _problems(environ: dict[str, str], **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.load(environ, stderr_is_tty=False, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^### (EVIDENCE_[A-Z0-9_]+)\s*$", DOCS.read_text(), re.M))
    settings = {env_var(f.name) for f in dataclasses.fields(Settings)}
    assert settings - documented == set(), "settings missing from docs/settings.md"
    assert documented - settings - {CONFIG_ENV} == set(), "docs/settings.md documents unknowns"
    assert CONFIG_ENV in documented


def test_defaults_keep_everything_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.load({}, stderr_is_tty=False)
    assert settings.data_dir == tmp_path / "evidence-data"
    assert settings.database_url == f"sqlite:///{tmp_path}/evidence-data/evidence.db"
    assert settings.sqlite_path == tmp_path / "evidence-data" / "evidence.db"
    assert settings.log_key_file == tmp_path / "evidence-data" / "log.key"
    assert (settings.store, settings.s3_bucket, settings.s3_endpoint_url) == ("local", None, None)
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert (settings.log_level, settings.log_format, settings.log_origin) == ("info", "json", None)
    assert (settings.s3_region, settings.s3_retention_days) == ("us-east-1", 2557)


def test_log_format_defaults_to_console_on_a_terminal() -> None:
    assert Settings.load({}, stderr_is_tty=True).log_format == "console"
    assert Settings.load({}, stderr_is_tty=False).log_format == "json"


def test_environment_sets_every_value(tmp_path: Path) -> None:
    settings = Settings.load(
        {
            "EVIDENCE_DATA_DIR": str(tmp_path / "d"),
            "EVIDENCE_DATABASE_URL": "postgresql://evidence@db.internal:5433/custody",
            "EVIDENCE_STORE": "s3",
            "EVIDENCE_S3_BUCKET": "council-evidence",
            "EVIDENCE_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "EVIDENCE_LOG_KEY_FILE": str(tmp_path / "secret" / "k"),
            "EVIDENCE_LOG_ORIGIN": "example.gov.uk/custody",
            "EVIDENCE_HOST": "10.0.0.5",
            "EVIDENCE_PORT": "9090",
            "EVIDENCE_LOG_LEVEL": "DEBUG",
            "EVIDENCE_LOG_FORMAT": "console",
            "EVIDENCE_S3_REGION": "eu-west-2",
            "EVIDENCE_S3_RETENTION_DAYS": "3653",
        },
        stderr_is_tty=False,
    )
    assert settings == Settings(
        data_dir=tmp_path / "d",
        database_url="postgresql://evidence@db.internal:5433/custody",
        store="s3",
        s3_bucket="council-evidence",
        s3_endpoint_url="http://127.0.0.1:9000",
        log_key_file=tmp_path / "secret" / "k",
        log_origin="example.gov.uk/custody",
        host="10.0.0.5",
        port=9090,
        log_level="debug",
        log_format="console",
        s3_region="eu-west-2",
        s3_retention_days=3653,
    )
    assert settings.sqlite_path is None


def test_toml_file_is_read_and_environment_wins_over_it(tmp_path: Path) -> None:
    config = tmp_path / "evidence.toml"
    config.write_text('port = 9000\nhost = "10.0.0.5"\nlog_origin = "from-file/log"\n')
    settings = Settings.load({"EVIDENCE_PORT": "9001"}, config_file=config, stderr_is_tty=False)
    assert (settings.port, settings.host, settings.log_origin) == (
        9001,
        "10.0.0.5",
        "from-file/log",
    )


def test_evidence_config_names_the_file_and_flags_win_over_everything(tmp_path: Path) -> None:
    config = tmp_path / "evidence.toml"
    config.write_text('port = "9000"\nhost = "10.1.1.1"\n')
    settings = Settings.load(
        {CONFIG_ENV: str(config), "EVIDENCE_HOST": "127.0.0.2"},
        overrides={"port": "9002", "host": None},
        stderr_is_tty=False,
    )
    assert (settings.port, settings.host) == (9002, "127.0.0.2")


def test_database_url_password_is_not_shown(tmp_path: Path) -> None:
    settings = Settings.load(
        {"EVIDENCE_DATABASE_URL": "postgresql://evidence:s3cr3t@db:5432/custody"},
        stderr_is_tty=False,
    )
    assert "s3cr3t" not in repr(settings)
    assert settings.database_url_redacted == "postgresql://evidence:***@db:5432/custody"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"EVIDENCE_PORT": "abc"}, "EVIDENCE_PORT='abc': must be a whole number from 1 to 65535"),
        (
            {"EVIDENCE_PORT": "70000"},
            "EVIDENCE_PORT='70000': must be a whole number from 1 to 65535",
        ),
        ({"EVIDENCE_PORT": "0"}, "EVIDENCE_PORT='0': must be a whole number from 1 to 65535"),
        ({"EVIDENCE_PORT": "-1"}, "EVIDENCE_PORT='-1': must be a whole number"),
        ({"EVIDENCE_STORE": "ftp"}, "EVIDENCE_STORE='ftp': must be one of 'local', 's3'"),
        (
            {"EVIDENCE_DATABASE_URL": "mysql://root@localhost/evidence"},
            "EVIDENCE_DATABASE_URL='mysql://root@localhost/evidence': must be"
            " postgresql://user@host:port/db or sqlite:///path/to/file.db"
            " (scheme 'mysql' is not supported)",
        ),
        ({"EVIDENCE_DATABASE_URL": "sqlite:///"}, "an SQLite URL needs a file path"),
        (
            {"EVIDENCE_DATABASE_URL": "postgresql://u@host:99999/db"},
            "EVIDENCE_DATABASE_URL='postgresql://u@host:99999/db': not a valid PostgreSQL URL",
        ),
        ({"EVIDENCE_DATABASE_URL": "postgresql://u@host/"}, "needs a database name"),
        (
            {"EVIDENCE_STORE": "s3"},
            "EVIDENCE_S3_BUCKET is required when EVIDENCE_STORE is 's3'",
        ),
        ({"EVIDENCE_S3_BUCKET": "Bad_Bucket"}, "not a valid S3 bucket name"),
        ({"EVIDENCE_S3_ENDPOINT_URL": "ftp://x"}, "must be an http:// or https:// URL"),
        ({"EVIDENCE_LOG_ORIGIN": "my log"}, "a log origin is one word"),
        ({"EVIDENCE_LOG_ORIGIN": "a+b"}, "a log origin is one word"),
        ({"EVIDENCE_LOG_LEVEL": "loud"}, "EVIDENCE_LOG_LEVEL='loud': must be one of 'debug'"),
        ({"EVIDENCE_LOG_FORMAT": "xml"}, "EVIDENCE_LOG_FORMAT='xml': must be one of 'json'"),
        ({"EVIDENCE_HOST": "two words"}, "EVIDENCE_HOST='two words': must be a host name"),
        ({"EVIDENCE_DATA_DIR": " "}, "EVIDENCE_DATA_DIR=' ': must be a path"),
        ({"EVIDENCE_CONFIG": "/nonexistent/evidence.toml"}, "cannot be read"),
        (
            {"EVIDENCE_S3_RETENTION_DAYS": "0"},
            "EVIDENCE_S3_RETENTION_DAYS='0': must be a whole number of days from 1 to 36500",
        ),
        ({"EVIDENCE_S3_RETENTION_DAYS": "-1"}, "must be a whole number of days"),
        ({"EVIDENCE_S3_RETENTION_DAYS": "7y"}, "must be a whole number of days"),
        ({"EVIDENCE_S3_RETENTION_DAYS": "36501"}, "must be a whole number of days"),
        ({"EVIDENCE_S3_REGION": "eu west 2"}, "EVIDENCE_S3_REGION='eu west 2': must be a region"),
        ({"EVIDENCE_S3_REGION": ""}, "EVIDENCE_S3_REGION='': must be a region"),
    ],
)
def test_bad_value_is_named_with_what_is_expected(environ: dict[str, str], message: str) -> None:
    problems = _problems(environ)
    assert problems.startswith("invalid settings:\n")
    assert message in problems


def test_all_bad_values_are_reported_at_once() -> None:
    problems = _problems(
        {
            "EVIDENCE_PORT": "abc",
            "EVIDENCE_STORE": "s3",
            "EVIDENCE_DATABASE_URL": "mysql://x/y",
            "EVIDENCE_LOG_FORMAT": "xml",
        }
    )
    lines = problems.splitlines()[1:]
    assert len(lines) == 4, problems
    assert all(line.startswith("  - ") for line in lines)
    for name in ("EVIDENCE_PORT", "EVIDENCE_DATABASE_URL", "EVIDENCE_LOG_FORMAT", "S3_BUCKET"):
        assert any(name in line for line in lines), name


def test_toml_problems_name_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "evidence.toml"
    config.write_text("prot = 8080\nport = true\nhost = 7\n")
    problems = _problems({}, config_file=config)
    assert f"config file {config}: unknown setting 'prot'" in problems
    assert f"port in {config}=True: must be a whole number, not a boolean" in problems
    assert f"host in {config}=7: must be a string, not int" in problems


def test_toml_syntax_error_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "evidence.toml"
    config.write_text("port = = 1\n")
    assert f"config file {config}: not valid TOML" in _problems({}, config_file=config)


def test_command_line_flag_is_named_in_its_problem() -> None:
    assert "--port='99999': must be a whole number" in _problems({}, overrides={"port": "99999"})


def test_s3_retention_days_from_toml_is_a_whole_number(tmp_path: Path) -> None:
    config = tmp_path / "evidence.toml"
    config.write_text('s3_retention_days = 3650\ns3_region = "minio-local"\n')
    settings = Settings.load({}, config_file=config, stderr_is_tty=False)
    assert (settings.s3_retention_days, settings.s3_region) == (3650, "minio-local")
    config.write_text("s3_retention_days = true\n")
    assert "must be a whole number of days from 1 to 36500, not a boolean" in _problems(
        {}, config_file=config
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[(raw, True) for raw in ("true", "TRUE", "1", "yes", "on")],
        *[(raw, False) for raw in ("false", "0", "no", "off", "")],
    ],
)
def test_trust_proxy_is_a_boolean_off_by_default(raw: str, expected: bool) -> None:
    assert Settings.load({}, stderr_is_tty=False).trust_proxy is False
    assert Settings.load({"EVIDENCE_TRUST_PROXY": raw}, stderr_is_tty=False).trust_proxy is expected


def test_trust_proxy_rejects_anything_but_a_boolean(tmp_path: Path) -> None:
    assert "EVIDENCE_TRUST_PROXY='maybe': must be true or false" in _problems(
        {"EVIDENCE_TRUST_PROXY": "maybe"}
    )
    config = tmp_path / "evidence.toml"
    config.write_text("trust_proxy = true\n")
    assert Settings.load({}, config_file=config, stderr_is_tty=False).trust_proxy is True
    config.write_text("trust_proxy = 1\n")
    assert f"trust_proxy in {config}=1: must be true or false, not int" in _problems(
        {}, config_file=config
    )
