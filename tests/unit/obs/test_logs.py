"""Tests for awayd.obs.logs: renderer choice, JSON shape, levels and secret redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import structlog

from awayd.obs.logs import REDACTED, configure_logging, is_secret_key, redact_secrets


class _TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_non_tty_stream_gets_one_json_object_per_line() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    log = structlog.get_logger("awayd.test")
    log.info("mailbox.checked", mailbox="alice", uid=42)
    log.warning("smtp.send_failed", mailbox="alice")

    first, second = _lines(out)
    assert first["event"] == "mailbox.checked"
    assert first["level"] == "info"
    assert first["mailbox"] == "alice"
    assert first["uid"] == 42
    assert second["level"] == "warning"


def test_timestamp_is_iso_8601_utc() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    structlog.get_logger().info("poll.started")

    stamp = _lines(out)[0]["timestamp"]
    assert isinstance(stamp, str)
    assert stamp.endswith("Z")
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)


def test_tty_stream_gets_the_console_renderer() -> None:
    out = _TtyStream()
    configure_logging(stream=out)
    structlog.get_logger().info("poll.started", mailbox="alice")

    text = out.getvalue()
    assert "poll.started" in text
    assert "mailbox" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_json_flag_overrides_tty_detection() -> None:
    out = _TtyStream()
    configure_logging(stream=out, json=True)
    structlog.get_logger().info("poll.started")
    assert _lines(out)[0]["event"] == "poll.started"

    plain = io.StringIO()
    configure_logging(stream=plain, json=False)
    structlog.get_logger().info("poll.started")
    assert not plain.getvalue().lstrip().startswith("{")


def test_events_below_the_level_are_dropped() -> None:
    out = io.StringIO()
    configure_logging(stream=out, level="WARNING")
    log = structlog.get_logger()
    log.debug("noise.debug")
    log.info("noise.info")
    log.error("store.failed")

    assert [line["event"] for line in _lines(out)] == ["store.failed"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="verbose"):
        configure_logging(stream=io.StringIO(), level="verbose")


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "token",
        "secret",
        "authorization",
        "Authorization",
        "smtp_password",
        "oauth2_token",
        "access_token",
        "client_secret",
        "PASSWORD_FILE_CONTENT",
    ],
)
def test_secret_keys_are_redacted_in_json_output(key: str) -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    structlog.get_logger().info("imap.login", **{key: "hunter2", "username": "alice"})

    text = out.getvalue()
    assert "hunter2" not in text
    line = _lines(out)[0]
    assert line[key] == REDACTED
    assert line["username"] == "alice"


def test_nested_secrets_and_bound_context_are_redacted() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    log = structlog.get_logger().bind(token="bound-secret")
    log.info(
        "config.loaded",
        imap={"host": "imap.example.org", "password": "nested-secret"},
        accounts=[{"name": "alice", "api_token": "listed-secret"}],
    )

    text = out.getvalue()
    for secret in ("bound-secret", "nested-secret", "listed-secret"):
        assert secret not in text
    line = _lines(out)[0]
    assert line["imap"] == {"host": "imap.example.org", "password": REDACTED}
    assert line["accounts"] == [{"name": "alice", "api_token": REDACTED}]


def test_console_output_is_redacted_too() -> None:
    out = _TtyStream()
    configure_logging(stream=out)
    structlog.get_logger().info("smtp.login", password="hunter2")
    assert "hunter2" not in out.getvalue()
    assert REDACTED in out.getvalue()


def test_stdlib_library_logs_are_json_and_redacted() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    logging.getLogger("apscheduler.scheduler").warning("job %s missed", "poll", extra={"password": "hunter2"})

    line = _lines(out)[0]
    assert line["event"] == "job poll missed"
    assert line["logger"] == "apscheduler.scheduler"
    assert line["level"] == "warning"
    assert line["password"] == REDACTED


def test_exceptions_are_rendered_into_the_json_line() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger().exception("pipeline.crashed")

    line = _lines(out)[0]
    assert line["level"] == "error"
    assert "RuntimeError: boom" in str(line["exception"])


def test_reconfiguring_replaces_the_previous_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    configure_logging(stream=second)
    structlog.get_logger().info("service.reloaded")

    assert first.getvalue() == ""
    assert _lines(second)[0]["event"] == "service.reloaded"


def test_redact_secrets_processor_leaves_other_keys_and_the_event_alone() -> None:
    event = {"event": "password.changed", "mailbox": "alice", "secret": "s", "uid": 3}
    assert redact_secrets(None, "info", event) == {
        "event": "password.changed",
        "mailbox": "alice",
        "secret": REDACTED,
        "uid": 3,
    }


def test_is_secret_key_matches_names_and_substrings_only() -> None:
    assert is_secret_key("password")
    assert is_secret_key("x-auth-token")
    assert not is_secret_key("mailbox")
    assert not is_secret_key("sender")
    assert not is_secret_key(3)
