"""Resolve a SecretSource (file, environment, command, systemd credential) to the secret text."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from awayd.config.model import SecretSource
from awayd.errors import ConfigError

#: The shipped units load a whole directory (`LoadCredential=awayd:DIR`), and systemd names each
#: file awayd_FILE; `password_credential: FILE` finds either name.
CREDENTIAL_PREFIX = "awayd_"
#: How long a password_command may run before it is killed.
COMMAND_TIMEOUT = 30.0


def resolve_secret(source: SecretSource, *, environ: Mapping[str, str] | None = None) -> str:
    """Return the secret `source` points at.

    Files and credentials lose one trailing newline (the one editors and `echo` add); command
    output is stripped of surrounding whitespace. `environ` (default: the process environment)
    is where variables and `$CREDENTIALS_DIRECTORY` are looked up, and the environment a
    command runs in.

    Raises:
        ConfigError: the source is unset, unreadable, empty or failed. The message names the
            file, variable or command (argv[0] only) and never contains the secret.
    """
    env = os.environ if environ is None else environ
    given = [
        name
        for name, value in (
            ("file", source.file),
            ("env", source.env),
            ("command", source.command),
            ("credential", source.credential),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise ConfigError(
            f"secret source needs exactly one of file/env/command/credential, got {given or 'none'}"
        )
    if source.file is not None:
        secret = _read_file(source.file, what="password file")
    elif source.env is not None:
        secret = _from_env(source.env, env)
    elif source.command is not None:
        secret = _from_command(source.command, env)
    else:
        assert source.credential is not None
        secret = _from_credential(source.credential, env)
    if not secret:
        raise ConfigError(f"secret from {source.describe()} is empty")
    return secret


def _read_file(path: Path, *, what: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{what} {path}: cannot read: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # `from None`: the decode error object holds the file's bytes.
        raise ConfigError(f"{what} {path}: not valid UTF-8") from None
    return _strip_one_newline(text)


def _strip_one_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def _from_env(name: str, environ: Mapping[str, str]) -> str:
    try:
        return environ[name]
    except KeyError:
        raise ConfigError(f"environment variable ${name} is not set") from None


def _from_command(argv: tuple[str, ...], environ: Mapping[str, str]) -> str:
    if not argv or not argv[0]:
        raise ConfigError("password command is empty")
    name = argv[0]
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            env=dict(environ),
        )
    except subprocess.TimeoutExpired:
        # `from None` here and below: the exception objects carry the whole argv and output.
        raise ConfigError(f"password command {name}: no answer within {COMMAND_TIMEOUT:g} s") from None
    except OSError as err:
        raise ConfigError(f"password command {name}: cannot run: {err.strerror or err}") from None
    if done.returncode != 0:
        # stderr is not quoted: a failing secret tool may echo what it was given.
        raise ConfigError(f"password command {name}: exited with status {done.returncode}")
    try:
        return done.stdout.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"password command {name}: output is not valid UTF-8") from None


def _from_credential(name: str, environ: Mapping[str, str]) -> str:
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(
            f"credential {name}: $CREDENTIALS_DIRECTORY is not set"
            " (systemd sets it for units with LoadCredential=; outside systemd, name the"
            " directory the unit loads: CREDENTIALS_DIRECTORY=/etc/awayd/credentials awayd check)"
        )
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"credential {name!r}: not a plain credential name")
    path = Path(directory) / name
    prefixed = Path(directory) / f"{CREDENTIAL_PREFIX}{name}"
    if not path.exists() and prefixed.exists():
        path = prefixed
    return _read_file(path, what=f"credential {name}:")
