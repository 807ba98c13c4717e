"""Tests for awayd.adapters.secrets: every kind of secret source, with real files and commands."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from awayd.adapters.secrets import resolve_secret
from awayd.config.model import SecretSource
from awayd.errors import ConfigError

SECRET = "s3cr3t-pa55"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"s3cr3t-pa55\n", SECRET),
        (b"s3cr3t-pa55\r\n", SECRET),
        (b"s3cr3t-pa55", SECRET),
        (b"s3cr3t-pa55\n\n", SECRET + "\n"),
        (b" spaced \n", " spaced "),
    ],
)
def test_file_loses_exactly_one_trailing_newline(tmp_path: Path, content: bytes, expected: str) -> None:
    path = _write(tmp_path / "pass", content)
    assert resolve_secret(SecretSource(file=path)) == expected


def test_file_keeps_non_ascii_text(tmp_path: Path) -> None:
    path = _write(tmp_path / "pass", "pässwörd\n".encode())
    assert resolve_secret(SecretSource(file=path)) == "pässwörd"


def test_missing_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pass"
    with pytest.raises(ConfigError, match=r"password file .*nope\.pass: cannot read"):
        resolve_secret(SecretSource(file=path))


def test_directory_instead_of_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_secret(SecretSource(file=tmp_path))


def test_binary_file_error_does_not_quote_the_content(tmp_path: Path) -> None:
    path = _write(tmp_path / "pass", b"\xffs3cr3t\xfe")
    with pytest.raises(ConfigError) as info:
        resolve_secret(SecretSource(file=path))
    assert "not valid UTF-8" in str(info.value)
    assert "s3cr3t" not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "pass", b"\n")
    with pytest.raises(ConfigError, match="is empty"):
        resolve_secret(SecretSource(file=path))


def test_env_reads_the_given_environment() -> None:
    assert resolve_secret(SecretSource(env="AWAYD_PW"), environ={"AWAYD_PW": SECRET}) == SECRET


def test_env_value_is_taken_verbatim() -> None:
    environ = {"AWAYD_PW": " with space\n"}
    assert resolve_secret(SecretSource(env="AWAYD_PW"), environ=environ) == " with space\n"


def test_unset_env_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"\$AWAYD_PW is not set"):
        resolve_secret(SecretSource(env="AWAYD_PW"), environ={"OTHER": "x"})


def test_empty_env_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"env \$AWAYD_PW is empty"):
        resolve_secret(SecretSource(env="AWAYD_PW"), environ={"AWAYD_PW": ""})


def test_command_output_is_stripped() -> None:
    echo = shutil.which("echo") or "/bin/echo"
    assert resolve_secret(SecretSource(command=(echo, "  " + SECRET + "  "))) == SECRET


def test_command_runs_without_a_shell() -> None:
    echo = shutil.which("echo") or "/bin/echo"
    got = resolve_secret(SecretSource(command=(echo, "$HOME;", "`id`")))
    assert got == "$HOME; `id`"


def test_command_runs_in_the_given_environment() -> None:
    code = "import os; print(os.environ['AWAYD_CHILD'])"
    source = SecretSource(command=(sys.executable, "-c", code))
    assert resolve_secret(source, environ={"AWAYD_CHILD": SECRET}) == SECRET


def test_failing_command_names_only_argv0() -> None:
    false = shutil.which("false") or "/bin/false"
    with pytest.raises(ConfigError) as info:
        resolve_secret(SecretSource(command=(false, "--token", "hunter2")))
    message = str(info.value)
    assert false in message
    assert "exited with status 1" in message
    assert "hunter2" not in message
    assert "--token" not in message


def test_failing_command_stderr_is_not_quoted() -> None:
    code = "import sys; sys.stderr.write('s3cr3t-pa55 rejected'); sys.exit(3)"
    with pytest.raises(ConfigError) as info:
        resolve_secret(SecretSource(command=(sys.executable, "-c", code)))
    assert "status 3" in str(info.value)
    assert SECRET not in str(info.value)


def test_missing_command_is_a_config_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-tool")
    with pytest.raises(ConfigError, match=r"no-such-tool: cannot run"):
        resolve_secret(SecretSource(command=(missing,)))


def test_command_with_empty_output_is_refused() -> None:
    true = shutil.which("true") or "/bin/true"
    with pytest.raises(ConfigError, match="is empty"):
        resolve_secret(SecretSource(command=(true,)))


def test_slow_command_is_killed_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("awayd.adapters.secrets.COMMAND_TIMEOUT", 0.2)
    code = "import time; time.sleep(5)"
    with pytest.raises(ConfigError, match=r"no answer within 0\.2 s"):
        resolve_secret(SecretSource(command=(sys.executable, "-c", code)))


def test_credential_is_read_from_the_credentials_directory(tmp_path: Path) -> None:
    _write(tmp_path / "smtp-password", (SECRET + "\n").encode())
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert resolve_secret(SecretSource(credential="smtp-password"), environ=environ) == SECRET


def test_credential_loaded_from_a_directory_is_found_under_its_systemd_name(tmp_path: Path) -> None:
    """`LoadCredential=awayd:/etc/awayd/credentials` exposes the file smtp.pass as awayd_smtp.pass."""
    _write(tmp_path / "awayd_smtp.pass", (SECRET + "\n").encode())
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert resolve_secret(SecretSource(credential="smtp.pass"), environ=environ) == SECRET


def test_credential_under_its_own_name_wins_over_the_prefixed_one(tmp_path: Path) -> None:
    _write(tmp_path / "smtp.pass", b"own")
    _write(tmp_path / "awayd_smtp.pass", b"prefixed")
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert resolve_secret(SecretSource(credential="smtp.pass"), environ=environ) == "own"


def test_credential_without_credentials_directory_explains_systemd() -> None:
    with pytest.raises(ConfigError, match=r"\$CREDENTIALS_DIRECTORY is not set.*LoadCredential"):
        resolve_secret(SecretSource(credential="smtp-password"), environ={})


def test_missing_credential_names_the_credential(tmp_path: Path) -> None:
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"credential smtp-password: .*cannot read"):
        resolve_secret(SecretSource(credential="smtp-password"), environ=environ)


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", ".."])
def test_credential_name_cannot_escape_the_directory(tmp_path: Path, name: str) -> None:
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    with pytest.raises(ConfigError, match="not a plain credential name"):
        resolve_secret(SecretSource(credential=name), environ=environ)


def test_source_without_any_field_is_refused() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        resolve_secret(SecretSource())


def test_source_with_two_fields_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        resolve_secret(SecretSource(file=tmp_path / "x", env="X"), environ={"X": "y"})
