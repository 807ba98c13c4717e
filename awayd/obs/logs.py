"""Structured logging setup: JSON lines off a TTY, console on one, secrets always redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["REDACTED", "configure_logging", "is_secret_key", "redact_secrets"]

REDACTED = "[redacted]"

# A key is secret when its lowercased name contains one of these. "secret" and
# "authorization" are substrings too, so client_secret and proxy_authorization are caught.
_SECRET_PARTS = ("password", "token", "secret", "authorization")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def is_secret_key(key: object) -> bool:
    """Return True when a log key names a secret (password, token, secret, authorization)."""
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_PARTS)


def _redact(value: object) -> object:
    # Nested containers are walked because callers bind whole settings dicts, e.g. imap={...}.
    if isinstance(value, Mapping):
        return {k: REDACTED if is_secret_key(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace the value of every secret-named key, at any depth, with "[redacted]"."""
    for key in list(event_dict):
        if key == "event":
            continue
        if is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or exotic streams are not terminals
        return False


class _AwaydHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so reconfiguring replaces only ours."""


def configure_logging(
    *,
    json: bool | None = None,
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger to write one event per line to `stream`.

    Library loggers (apscheduler, imapclient) go through the same processors, so their
    lines are JSON too and pass the same redaction. Calling it again replaces the previous
    setup (used on SIGHUP and in tests).

    Args:
        json: True for JSON lines, False for the console renderer, None to choose JSON
            exactly when `stream` is not a TTY.
        level: debug, info, warning, error or critical (case-insensitive).
        stream: where lines go; sys.stderr (looked up at call time) when None.

    Raises:
        ValueError: `level` is not a known level name.
    """
    levelno = _LEVELS.get(level.lower())
    if levelno is None:
        known = ", ".join(sorted(set(_LEVELS) - {"warn"}))
        raise ValueError(f"unknown log level {level!r}; expected one of {known}")
    out = sys.stderr if stream is None else stream
    tty = _is_tty(out)
    as_json = (not tty) if json is None else json

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if as_json:
        final += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        final.append(structlog.dev.ConsoleRenderer(colors=tty))

    handler = _AwaydHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared], processors=final
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _AwaydHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(levelno)

    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(levelno),
        context_class=dict,
        # Not cached: a reload or a test may call configure_logging again.
        cache_logger_on_first_use=False,
    )
