"""The fault suite's table: every scenario adds its row, printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Outcome, format_table
from tests.integration.daemon import Daemons

OUTCOMES = pytest.StashKey[list[Outcome]]()


@pytest.fixture
def fault_table(request: pytest.FixtureRequest) -> list[Outcome]:
    """Append each scenario's Outcome here; the table is printed after the run."""
    return request.config.stash.setdefault(OUTCOMES, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    outcomes = config.stash.get(OUTCOMES, [])
    if not outcomes:
        return
    terminalreporter.section("fault table (drops and duplicates per expected sender)")
    terminalreporter.write_line(format_table(outcomes))
    for outcome in outcomes:
        if outcome.note:
            terminalreporter.write_line(f"{outcome.scenario}: {outcome.note}")


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    """Start `awayd run` processes through this; any still running at the end is killed."""
    with Daemons(tmp_path) as made:
        yield made
