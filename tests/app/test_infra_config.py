"""The example deployment settings in infra/ stay valid."""

from __future__ import annotations

from pathlib import Path

from evidence.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "infra" / "evidence.example.toml"


def test_example_deployment_settings_load() -> None:
    settings = Settings.load({}, config_file=EXAMPLE, stderr_is_tty=False)
    assert settings.database_url == "postgresql://evidence@db.internal:5432/evidence"
    assert settings.store == "s3"
    assert settings.s3_bucket == "evidence-originals"
    assert settings.log_origin == "evidence.example-council.gov.uk/custody"
    assert str(settings.log_key_file) == "/run/secrets/evidence-log.key"
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)  # noqa: S104
