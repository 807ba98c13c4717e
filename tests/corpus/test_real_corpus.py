"""Public real mail (tests/data/real): machine mail is skipped and people are answered.

bench/quality.py re-addresses every message to the corpus mailbox with a non-null
Return-Path (its From, then a neutral relay for machine mail) and judges all of them in one
`awayd explain --json` process. This test runs it and holds it to the targets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "tests" / "data" / "real"


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bench.quality", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _files(kind: str) -> list[Path]:
    return [p for p in (REAL / kind).rglob("*") if p.is_file()]


def test_the_corpus_is_as_large_as_promised_and_every_source_is_documented() -> None:
    machine, human = _files("machine"), _files("human")
    assert len(machine) >= 300
    assert len(human) >= 100
    readme = (REAL / "README").read_text()
    for source in {p.parent.name for p in machine + human}:
        assert f"`{source}`" in readme, f"{source} has no licence entry in tests/data/real/README"


def test_machine_mail_is_skipped_with_return_path_equal_to_from(result: dict[str, Any]) -> None:
    s = result["sets"]["machine/from"]
    assert s["total"] == len(_files("machine"))
    assert s["rate"] >= 0.995, [m for m in result["missed"] if m["set"] == "machine/from"]


def test_machine_mail_is_skipped_with_a_neutral_return_path(result: dict[str, Any]) -> None:
    s = result["sets"]["machine/relay"]
    assert s["total"] == len(_files("machine"))
    assert s["rate"] >= 0.98, [m for m in result["missed"] if m["set"] == "machine/relay"]


def test_every_person_is_answered_except_listed_list_or_bulk_mail(result: dict[str, Any]) -> None:
    human = result["sets"]["human"]
    exempt = result["sets"].get("human-exempt", {"total": 0})
    assert human["total"] + exempt["total"] == len(_files("human"))
    assert human["ok"] == human["total"], [m for m in result["missed"] if m["set"] == "human"]
    assert not result["stale_exceptions"]


def test_each_exception_names_a_list_or_bulk_marker_and_says_why() -> None:
    entries = yaml.safe_load((REAL / "exceptions.yaml").read_text())
    for entry in entries:
        assert entry["reason"] in ("list", "precedence", "bulk"), entry
        assert entry["why"].strip(), entry
        assert (REAL / entry["file"]).is_file(), entry
