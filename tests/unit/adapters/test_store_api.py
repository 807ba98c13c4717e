"""The store port: which backend a config opens, names without passwords, psycopg optional."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from awayd.adapters.store_api import backend_name, redact, state_name
from awayd.config.model import StateSettings

ROOT = Path(__file__).resolve().parents[3]


def test_a_url_names_postgresql_without_its_password() -> None:
    settings = StateSettings(url="postgresql://awayd:s3cret@db.example.org:5432/awayd")
    assert backend_name(settings) == "postgresql"
    assert state_name(settings) == "postgresql://awayd:***@db.example.org:5432/awayd"
    assert backend_name(StateSettings(path=Path("/x/state.db"))) == "sqlite"
    assert state_name(StateSettings(path=Path("/x/state.db"))) == "/x/state.db"


def test_redact_leaves_a_url_without_password_alone() -> None:
    assert redact("postgresql://awayd@db/awayd") == "postgresql://awayd@db/awayd"
    assert redact("postgresql:///awayd") == "postgresql:///awayd"


BLOCK_PSYCOPG = """
import sys
sys.modules["psycopg"] = None  # as if `awayd[postgres]` was not installed
import awayd.service, awayd.cli.commands, awayd.cli.away, awayd.cli.state, awayd.leasing
from pathlib import Path
from awayd.adapters.store_api import open_store
from awayd.config.model import StateSettings
from awayd.errors import StateError
try:
    open_store(StateSettings(url="postgresql://awayd:pw@127.0.0.1:9/awayd"))
except StateError as err:
    print(err, err.transient)
"""


def test_the_daemon_runs_without_psycopg_and_a_postgresql_state_asks_for_it(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", BLOCK_PSYCOPG], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "needs psycopg" in done.stdout
    assert "pip install 'awayd[postgres]'" in done.stdout
    assert "pw@" not in done.stdout
    assert done.stdout.strip().endswith("False")  # a configuration problem: exit 78
