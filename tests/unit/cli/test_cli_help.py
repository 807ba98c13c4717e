"""`awayd --help` and every subcommand's help: each option explained, exit codes listed."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from awayd.cli.main import build_parser, main


def parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield parser.prog, parser
    for action in parser._actions:  # argparse has no public view of its tree
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def test_every_subcommand_and_option_has_help_text() -> None:
    missing = []
    for prog, parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                missing += [f"{prog} {name}" for name in action.choices if name not in helped]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_top_level_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for code, meaning in (("0", "ok"), ("2", "usage"), ("65", "message file"),
                          ("69", "server"), ("70", "bug"), ("75", "temporary"),
                          ("78", "configuration"), ("141", "output")):
        assert any(line.split()[:1] == [code] and meaning in line for line in out.splitlines()), code


@pytest.mark.parametrize("argv", [["explain", "--at", "soon"], ["away", "alice"], ["suppress"],
                                  ["report", "--bogus"], ["status", "extra"]])
def test_usage_errors_exit_2_naming_the_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"awayd {argv[0]}: error:" in err


def test_a_bug_reaches_the_user_as_one_line_and_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from awayd.cli import commands  # noqa: PLC0415

    def broken(args: argparse.Namespace, config_path: object) -> int:
        raise KeyError("surprise")

    monkeypatch.setattr(commands, "cmd_check", broken)
    monkeypatch.delenv("AWAYD_DEBUG", raising=False)
    assert main(["check"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("awayd check: internal error: KeyError('surprise')")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv("AWAYD_DEBUG", "1")
    assert main(["check"]) == 70
    assert "Traceback" in capsys.readouterr().err
