"""Every CLI command with broken inputs: a documented exit code and one line, never a traceback."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from awayd.adapters.store_sqlite import SqliteStore
from awayd.cli.main import main

DOCUMENTED = {0, 2, 65, 69, 75, 78}

GOOD = """state: {path: STATE}
mailboxes:
  - name: alice
    address: alice@example.org
    rules: [{name: away, text: "Hello {{ sender.first_name }}"}]
"""
MESSAGE = (b"Return-Path: <bob@example.net>\r\nFrom: Bob <bob@example.net>\r\n"
           b"To: alice@example.org\r\nSubject: Hi\r\n\r\nHi\r\n")


def bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join([*lines, "mailboxes: *a9"]) + "\n"


def good(tmp: Path, state: str = "state.db") -> Path:
    path = tmp / "config.yaml"
    path.write_text(GOOD.replace("STATE", state), encoding="utf-8")
    return path


def text(body: str | bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "config.yaml"
        path.write_bytes(body.encode() if isinstance(body, str) else body)
        return path
    return make


def with_state(prepare: Callable[[Path], None]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        prepare(tmp / "state.db")
        return good(tmp)
    return make


def corrupt(path: Path) -> None:
    path.write_bytes(b"not a database at all " * 100)


def foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE mail (id INTEGER)")
    conn.close()


def newer(path: Path) -> None:
    SqliteStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 999")
    conn.commit()
    conn.close()


def truncated(path: Path) -> None:
    SqliteStore.open(path).close()
    path.write_bytes(path.read_bytes()[:1000])


CONFIGS: dict[str, Callable[[Path], Path]] = {
    "missing": lambda tmp: tmp / "nowhere.yaml",
    "directory": lambda tmp: tmp,
    "not-utf8": text(b"mailboxes: \xff\xfe\n"),
    "bad-yaml": text("mailboxes: [\n"),
    "bomb": text(bomb()),
    "not-a-mapping": text("- one\n- two\n"),
    "unknown-keys": text("mailbox: []\n"),
    "bad-dates": text(GOOD.replace("STATE", "s.db").replace("{name: away,",
                                                              "{when: {from: 2026-02-30}, name: away,")),
    "state-corrupt": with_state(corrupt),
    "state-truncated": with_state(truncated),
    "state-foreign": with_state(foreign),
    "state-newer": with_state(newer),
    "state-is-a-directory": with_state(lambda p: p.mkdir()),
    "state-under-a-file": lambda tmp: good(tmp, "config.yaml/state.db"),
}
BROKEN_CONFIG = {"missing", "directory", "not-utf8", "bad-yaml", "bomb", "not-a-mapping",
                 "unknown-keys", "bad-dates"}

COMMANDS: list[list[str]] = [
    ["check"],
    ["explain", "MSG"],
    ["explain", "--history", "MSG"],
    ["explain", "MISSING"],
    ["explain", "DIR"],
    ["explain", "--mailbox", "nobody", "MSG"],
    ["explain", "--at", "yesterday", "MSG"],
    ["report"],
    ["report", "--json"],
    ["report", "--since", "a while"],
    ["forget", "--mailbox", "alice", "bob@example.net"],
    ["forget", "--mailbox", "nobody", "bob@example.net"],
    ["forget", "--mailbox", "alice", "not an address"],
    ["suppress", "list"],
    ["suppress", "list", "--mailbox", "nobody"],
    ["suppress", "add", "@example.net"],
    ["suppress", "add", "--mailbox", "nobody", "@example.net"],
    ["suppress", "add", "not an address"],
    ["suppress", "remove", "@example.net"],
    ["away", "alice", "--until", "2099-01-01"],
    ["away", "alice", "--until", "someday"],
    ["away", "nobody", "--until", "2099-01-01"],
    ["away", "alice", "--until", "2099-01-01", "--text", "MISSING"],
    ["away", "alice", "--until", "2099-01-01", "--text", "DIR"],
    ["back", "alice"],
    ["back", "nobody"],
    ["status"],
    ["status", "--json"],
]


def argv_for(command: list[str], config: Path, tmp: Path) -> list[str]:
    files = {"MSG": str(tmp / "msg.eml"), "MISSING": str(tmp / "missing.eml"),
             "DIR": str(tmp / "empty-dir")}
    args = [files.get(a, a) for a in command]
    depth = 2 if args[0] == "suppress" else 1
    return [*args[:depth], "--config", str(config), *args[depth:]]


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_every_command_with_a_broken_input_exits_with_a_documented_code_and_no_traceback(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "msg.eml").write_bytes(MESSAGE)
    (tmp_path / "empty-dir").mkdir()
    config = CONFIGS[case](tmp_path)
    for command in COMMANDS:
        argv = argv_for(command, config, tmp_path)
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code  # type: ignore[assignment]
        out, err = capsys.readouterr()
        where = f"{case}: awayd {' '.join(argv)}"
        assert code in DOCUMENTED, f"{where}: exit {code}\n{err}"
        assert "Traceback" not in out + err, where
        if case in BROKEN_CONFIG:
            assert code in (2, 78), f"{where}: exit {code}"
        if code != 0:
            assert err.strip(), f"{where}: exit {code} without a word on stderr"
            assert err.startswith(("awayd", str(config))) or "usage:" in err, f"{where}: {err}"


@pytest.mark.parametrize("case", ["missing", "bomb", "state-corrupt", "state-is-a-directory"])
def test_run_with_a_broken_input_exits_78_without_a_traceback(case: str, tmp_path: Path) -> None:
    config = CONFIGS[case](tmp_path)
    done = subprocess.run([sys.executable, "-m", "awayd", "run", "--once", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 78, done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """`awayd explain DIR | head -1`: the pipe closes while awayd still writes."""
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen([sys.executable, "-m", "awayd", "explain", "--config",
                           str(root / "tests/data/config.yaml"), str(root / "tests/data")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          cwd=root) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait(60)
    assert "Traceback" not in err
    assert "Error" not in err
    assert code == 141
