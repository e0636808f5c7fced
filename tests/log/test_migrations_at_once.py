"""Several server processes starting at the same moment on a fresh PostgreSQL database.

Each process does what `evidence serve` does at start-up (evidence.app's
`open_database` and `open_log`): migrate the schema, then open the log,
creating it if it is empty. Four of them are held at a gate once imported and
released together. All must succeed, leaving one schema at the newest
revision and one log with one ``log.created`` entry.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from evidence.chain.entries import LogCreated, parse_entry
from evidence.db import MIGRATIONS, Database
from evidence.log.keys import load_or_create_log_signer
from evidence.log.tables import log_entries

PROCESSES = 4
PROCESS_TIMEOUT_SECONDS = 120

STARTER = """
import sys
from pathlib import Path
from evidence.clock import utc_now
from evidence.db import open_database
from evidence.log.custody import open_log
from evidence.settings import Settings
settings = Settings.load(
    {"EVIDENCE_DATA_DIR": sys.argv[1], "EVIDENCE_DATABASE_URL": sys.argv[2],
     "EVIDENCE_LOG_KEY_FILE": sys.argv[3], "EVIDENCE_LOG_FORMAT": "json"},
    stderr_is_tty=False,
)
print("ready", flush=True)
sys.stdin.readline()  # the gate: every process is released at once
db = open_database(settings)
log = open_log(settings, db, utc_now)
print("size", log.size(), flush=True)
db.close()
"""


@pytest.mark.postgres
def test_four_processes_migrating_a_fresh_database_at_once_make_one_schema_and_one_log(
    postgres_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "log.key"
    load_or_create_log_signer(key_file, "evidence.example/migrations")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                STARTER,
                str(tmp_path / f"server-{i}"),
                postgres_url,
                str(key_file),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(PROCESSES)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for process in processes:  # the gate opens for all of them at once
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        results = [process.communicate(timeout=PROCESS_TIMEOUT_SECONDS) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
        assert out.splitlines()[-1] == "size 1", out  # one log.created, whoever made it
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    db = Database.connect(postgres_url, migrate=False)
    try:
        with db.read() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            entries = conn.execute(sa.select(log_entries.c.data)).scalars().all()
        assert [row[0] for row in versions] == [head]
        assert len(entries) == 1
        assert isinstance(parse_entry(bytes(entries[0])), LogCreated)
    finally:
        db.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config
