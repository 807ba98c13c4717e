"""The one exception tree of awayd; the CLI maps each branch to an exit code."""

from __future__ import annotations


class AwaydError(Exception):
    """Root of every error awayd raises on purpose."""

    #: True when retrying later may succeed (network down, 4xx, lock held).
    transient: bool = False


class ConfigError(AwaydError):
    """The configuration is invalid; carries every problem found, not only the first."""

    def __init__(self, problems: list[str] | tuple[str, ...] | str) -> None:
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("\n".join(self.problems))


class RenderError(AwaydError):
    """A reply template failed for one message (bad expression, CR/LF in a header)."""


class StateError(AwaydError):
    """The state store cannot be opened, migrated or written."""


class SourceError(AwaydError):
    """The IMAP side failed: connection, login, protocol."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class SendError(AwaydError):
    """The SMTP side failed; `transient` tells a 4xx or network error from a 5xx.

    `scope` says whose fault it is: "message" (the server refused this reply: 4xx/5xx to
    MAIL, RCPT or DATA), "relay" (the relay cannot be reached or set up: network, timeout,
    TLS, EHLO, 421), "auth" (the relay refused our credentials, e.g. 535).
    """

    def __init__(self, message: str, *, transient: bool, code: int | None = None,
                 scope: str = "message") -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code
        self.scope = scope


class InputError(AwaydError):
    """A message file given on the command line cannot be read."""


class UsageError(AwaydError):
    """A command-line argument is wrong (unknown mailbox, a bad date); the message names the command."""
