"""An in-process aiosmtpd sink on 127.0.0.1 that records envelopes and can be told to fail."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from tests.integration.dovecot import HOST, free_port

Stage = Literal["rcpt", "data"]

#: RCPT and MAIL parameters of the DSN extension (RFC 3461); aiosmtpd rejects them otherwise.
_DSN_RCPT = ("NOTIFY=", "ORCPT=")
_DSN_MAIL = ("RET=", "ENVID=")


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted transaction. The null sender `<>` is recorded as ""."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    mail_options: tuple[str, ...]
    rcpt_options: tuple[str, ...]  # every RCPT parameter given, uppercased, e.g. NOTIFY=NEVER
    received_at: float  # time.time() at the end of DATA

    @property
    def notify(self) -> str | None:
        """The DSN NOTIFY value of the last recipient that gave one (e.g. "NEVER"), else None."""
        for option in reversed(self.rcpt_options):
            if option.startswith("NOTIFY="):
                return option.removeprefix("NOTIFY=")
        return None


def _split(arg: str | None, prefixes: tuple[str, ...]) -> tuple[str | None, list[str]]:
    if arg is None:
        return None, []
    words = arg.split(" ")
    dsn = [w for w in words if w.upper().startswith(prefixes)]
    return " ".join(w for w in words if w not in dsn), [w.upper() for w in dsn]


class _DsnSMTP(SMTP):
    """aiosmtpd's SMTP, accepting the DSN parameters it would answer 555 to."""

    dsn_rcpt: list[str]
    dsn_mail: list[str]

    async def smtp_MAIL(self, arg: str | None) -> None:
        arg, self.dsn_mail = _split(arg, _DSN_MAIL)
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        arg, self.dsn_rcpt = _split(arg, _DSN_RCPT)
        await super().smtp_RCPT(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _DsnSMTP(self.handler, **self.SMTP_kwargs)


class SmtpSink:
    """Accepts any sender and recipient on 127.0.0.1:`port`; records what it accepted.

    Failures are injected per RCPT command or per end of DATA: `fail_next(2)` answers 451
    to the next two, `fail_always(550)` answers 550 until `reset()`. EHLO offers DSN, so a
    client may send NOTIFY=NEVER (see ReceivedMail.notify).
    """

    def __init__(self, *, advertise_dsn: bool = True, port: int | None = None,
                 **smtp_kwargs: Any) -> None:
        self.host = HOST
        self.port = port or free_port()  # a given port: a server coming back where it was
        self.advertise_dsn = advertise_dsn
        self._lock = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._fail_count = 0
        self._fail_code = 0
        self._fail_stage: Stage = "data"
        self._fail_forever = False
        self._controller = _Controller(self, hostname=HOST, port=self.port, **smtp_kwargs)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    # -- test controls -----------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def fail_next(self, count: int, code: int = 451, *, stage: Stage = "data") -> None:
        """Answer `code` (a 4xx by default) to the next `count` transactions at `stage`."""
        with self._lock:
            self._fail_count, self._fail_code, self._fail_stage = count, code, stage
            self._fail_forever = False

    def fail_always(self, code: int = 550, *, stage: Stage = "data") -> None:
        """Answer `code` (a 5xx by default) to every transaction at `stage` until reset()."""
        with self._lock:
            self._fail_code, self._fail_stage, self._fail_forever = code, stage, True

    def reset(self) -> None:
        """Forget recorded messages and injected failures."""
        with self._lock:
            self._messages.clear()
            self._fail_count, self._fail_forever = 0, False

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until at least `count` messages were accepted; return them all (may be fewer)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return list(self._messages)

    # -- aiosmtpd handler hooks ------------------------------------------------------------

    def _failure(self, stage: Stage) -> str | None:
        with self._lock:
            if self._fail_stage != stage or not (self._fail_forever or self._fail_count > 0):
                return None
            if not self._fail_forever:
                self._fail_count -= 1
            code = self._fail_code
        text = "try again later" if code < 500 else "rejected"
        return f"{code} {code // 100}.0.0 sink: {text} (injected)"

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.advertise_dsn:
            responses.insert(len(responses) - 1, "250-DSN")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        failure = self._failure("rcpt")
        if failure is not None:
            return failure
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend([*rcpt_options, *getattr(server, "dsn_rcpt", [])])
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        failure = self._failure("data")
        if failure is not None:
            return failure
        raw = envelope.original_content or envelope.content
        content = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        mail_from = "" if envelope.mail_from in ("<>", None) else str(envelope.mail_from)
        mail = ReceivedMail(
            mail_from=mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=content,
            mail_options=(*envelope.mail_options, *getattr(server, "dsn_mail", [])),
            rcpt_options=tuple(envelope.rcpt_options),
            received_at=time.time(),
        )
        with self._lock:
            self._messages.append(mail)
            self._lock.notify_all()
        return "250 OK queued in sink"
