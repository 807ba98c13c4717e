"""Tests for awayd.adapters.smtp against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from awayd.adapters.smtp import SmtpSender
from awayd.config.model import SecretSource, Security, SmtpSettings, TlsSettings
from awayd.errors import SendError

PASSWORD = "s3cret-smtp-pw"
MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: Auto: Lunch\r\n"
    b"Auto-Submitted: auto-replied\r\n"
    b"\r\n"
    b"I am away.\r\n"
    b".a line that starts with a dot\r\n"
)


# --- a recording SMTP server -------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    rcpt_options: list[str]
    content: bytes
    tls: bool


@dataclass
class Sink:
    """What the server saw; `drop_connections` closes every open connection server-side."""

    host: str
    port: int
    controller: CountingController
    dsn: bool
    messages: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    auth_attempts: list[str] = field(default_factory=list)  # mechanism of every AUTH, failed too
    connections: int = 0
    protocols: list[SMTP] = field(default_factory=list)

    def drop_connections(self) -> None:
        done = threading.Event()

        def close_all() -> None:
            for proto in self.protocols:
                if proto.transport is not None:
                    proto.transport.close()
            done.set()

        self.controller.loop.call_soon_threadsafe(close_all)
        assert done.wait(5)


def _split_params(arg: str | None, names: tuple[str, ...]) -> tuple[str | None, list[str]]:
    if arg is None:
        return None, []
    kept: list[str] = []
    taken: list[str] = []
    for word in arg.split(" "):
        (taken if word.upper().partition("=")[0] in names else kept).append(word)
    return " ".join(kept), [t.upper() for t in taken]


class DsnSMTP(SMTP):
    """aiosmtpd refuses every RCPT parameter; this server takes RFC 3461's and records them."""

    dsn_mail: list[str]
    dsn_rcpt: list[str]

    async def smtp_MAIL(self, arg: str | None) -> None:
        arg, self.dsn_mail = _split_params(arg, ("RET", "ENVID"))
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        arg, self.dsn_rcpt = _split_params(arg, ("NOTIFY", "ORCPT"))
        await super().smtp_RCPT(arg)


class Handler:
    def __init__(self) -> None:
        self.sink: Sink | None = None

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        assert self.sink is not None
        if self.sink.dsn:
            responses.insert(-1, "250-DSN")
        return responses

    async def handle_MAIL(
        self, server: DsnSMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend([*options, *server.dsn_mail])
        return "250 OK"

    async def handle_RCPT(
        self, server: DsnSMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("tempfail@"):
            return "451 4.3.0 mailbox busy, try again later"
        if address.startswith("nouser@"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend([*options, *server.dsn_rcpt])
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert self.sink is not None
        content = envelope.original_content or b""
        if b"X-Reject-Me: yes" in content:
            return "554 5.6.0 content refused"
        transport = server.transport
        self.sink.messages.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                mail_options=list(envelope.mail_options),
                rcpt_options=list(envelope.rcpt_options),
                content=content,
                tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
            )
        )
        return "250 2.0.0 queued"


class CountingController(Controller):
    """Builds a DsnSMTP per connection and counts the connections."""

    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sink: Sink | None = None
        self.running = False

    def start(self) -> None:
        super().start()
        self.running = True

    def stop(self, no_assert: bool = False) -> None:
        if self.running:
            self.running = False
            super().stop(no_assert)

    def factory(self) -> SMTP:
        server = DsnSMTP(self.handler, **self.SMTP_kwargs)
        if self.sink is not None:
            self.sink.connections += 1
            self.sink.protocols.append(server)
        return server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Certs:
    ca_file: Path
    other_ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    ca = trustme.CA()
    other = trustme.CA()
    directory = tmp_path_factory.mktemp("certs")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    other.cert_pem.write_to_path(str(directory / "other-ca.pem"))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    return Certs(directory / "ca.pem", directory / "other-ca.pem", server_context)


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
    handler = server.event_handler
    assert isinstance(handler, Handler)
    assert handler.sink is not None
    handler.sink.auth_attempts.append(mechanism)
    if ok:
        handler.sink.logins.append(data.login.decode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies 535


@pytest.fixture
def start_server(certs: Certs) -> Iterator[Any]:
    controllers: list[CountingController] = []

    def start(*, dsn: bool = False, mode: Security = "none", smtputf8: bool = True) -> Sink:
        handler = Handler()
        port = free_port()
        kwargs: dict[str, Any] = {"authenticator": _authenticate, "enable_SMTPUTF8": smtputf8}
        if mode == "starttls":
            kwargs["tls_context"] = certs.server_context
        elif mode == "tls":
            kwargs["ssl_context"] = certs.server_context
            kwargs["auth_require_tls"] = False  # aiosmtpd counts only STARTTLS as TLS
        controller = CountingController(handler, hostname="127.0.0.1", port=port, ready_timeout=5, **kwargs)
        controller.start()
        controllers.append(controller)
        sink = Sink("127.0.0.1", port, controller, dsn)
        handler.sink = sink
        controller.sink = sink  # set after start: the start-up probe is not a connection
        return sink

    yield start
    for controller in controllers:
        controller.stop()


def settings(
    sink: Sink,
    *,
    security: Security = "none",
    ca_file: Path | None = None,
    verify: bool = True,
    username: str | None = None,
    timeout: float = 5.0,
) -> SmtpSettings:
    return SmtpSettings(
        host=sink.host,
        port=sink.port,
        tls=TlsSettings(security=security, verify=verify, ca_file=ca_file),
        username=username,
        password=SecretSource(env="AWAYD_SMTP_PW") if username else None,
        timeout=timeout,
        helo="awayd.test",
    )


def no_secret(source: SecretSource) -> str:
    raise AssertionError(f"no secret expected, asked for {source.describe()}")


# --- envelope ------------------------------------------------------------------------------


def test_null_sender_is_sent_as_empty_reverse_path(start_server: Any) -> None:
    sink = start_server()
    with SmtpSender(settings(sink), no_secret) as sender:
        sender.send("", "bob@example.net", MESSAGE)
    [got] = sink.messages
    assert got.mail_from == "<>"
    assert got.rcpt_tos == ["bob@example.net"]


def test_configured_envelope_sender_is_used(start_server: Any) -> None:
    sink = start_server()
    with SmtpSender(settings(sink), no_secret) as sender:
        sender.send("noreply-bounces@example.org", "bob@example.net", MESSAGE)
    assert sink.messages[0].mail_from == "noreply-bounces@example.org"


def test_message_bytes_arrive_unchanged(start_server: Any) -> None:
    sink = start_server()
    with SmtpSender(settings(sink), no_secret) as sender:
        sender.send("", "bob@example.net", MESSAGE)
    assert sink.messages[0].content == MESSAGE


def test_notify_never_is_asked_when_the_server_offers_dsn(start_server: Any) -> None:
    sink = start_server(dsn=True)
    with SmtpSender(settings(sink), no_secret) as sender:
        sender.send("", "bob@example.net", MESSAGE)
    [got] = sink.messages
    assert got.rcpt_options == ["NOTIFY=NEVER"]
    assert "RET=HDRS" in got.mail_options


def test_no_dsn_parameters_when_the_server_does_not_offer_dsn(start_server: Any) -> None:
    sink = start_server(dsn=False)
    with SmtpSender(settings(sink), no_secret) as sender:
        sender.send("", "bob@example.net", MESSAGE)
    [got] = sink.messages
    assert got.rcpt_options == []
    assert got.mail_options == []


def test_non_ascii_recipient_goes_with_smtputf8(start_server: Any) -> None:
    sink = start_server()
    with SmtpSender(settings(sink), no_secret) as sender:
        sender.send("", "jürgen@exämple.de", MESSAGE)
    [got] = sink.messages
    assert got.rcpt_tos == ["jürgen@exämple.de"]
    assert "SMTPUTF8" in got.mail_options


UTF8_IDS = (
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Subject: Auto: =?utf-8?q?R=C3=A9union?=\r\n"
    "In-Reply-To: <réunion.1@exämple.de>\r\n"
    "References: <a.0@example.net>\r\n <réunion.1@exämple.de>\r\n"
    "\r\n"
    "I am away.\r\n"
).encode()


def test_utf8_header_goes_with_smtputf8_when_offered(start_server: Any) -> None:
    sink = start_server()
    with SmtpSender(settings(sink), no_secret) as sender:
        sender.send("", "bob@example.net", UTF8_IDS)
    [got] = sink.messages
    assert "SMTPUTF8" in got.mail_options
    assert got.content == UTF8_IDS


def test_without_smtputf8_utf8_ids_are_left_out_and_the_reply_still_goes(start_server: Any) -> None:
    sink = start_server(smtputf8=False)
    with SmtpSender(settings(sink), no_secret) as sender:
        sender.send("", "bob@example.net", UTF8_IDS)
    [got] = sink.messages
    assert "SMTPUTF8" not in got.mail_options
    assert got.content.isascii()
    assert b"In-Reply-To" not in got.content
    assert b"\r\nReferences: <a.0@example.net>\r\n" in got.content
    assert got.content.endswith(b"\r\n\r\nI am away.\r\n")


@pytest.mark.parametrize(("envelope_from", "recipient", "message"), [
    ("", "jürgen@exämple.de", MESSAGE),
    ("bounces@exämple.org", "bob@example.net", MESSAGE),
    ("", "bob@example.net", "From: Jörg <jörg@bücher.example>\r\n\r\nWeg.\r\n".encode()),
], ids=["recipient", "envelope-sender", "header-address"])
def test_without_smtputf8_a_utf8_address_fails_permanently_naming_the_relay(
    start_server: Any, envelope_from: str, recipient: str, message: bytes
) -> None:
    sink = start_server(smtputf8=False)
    with SmtpSender(settings(sink), no_secret) as sender:
        with pytest.raises(SendError) as info:
            sender.send(envelope_from, recipient, message)
        assert not info.value.transient
        assert f"127.0.0.1:{sink.port}" in str(info.value)
        assert "does not offer SMTPUTF8" in str(info.value)
        assert sink.messages == []
        sender.send("", "bob@example.net", MESSAGE)  # the connection stays usable
    assert len(sink.messages) == 1
    assert sink.connections == 1


def test_eight_bit_body_is_declared_as_8bitmime(start_server: Any) -> None:
    sink = start_server()
    body = MESSAGE + "Très bien.\r\n".encode()
    with SmtpSender(settings(sink), no_secret) as sender:
        sender.send("", "bob@example.net", body)
    [got] = sink.messages
    assert "BODY=8BITMIME" in got.mail_options
    assert got.content == body


@pytest.mark.parametrize("recipient", ["", "bob@example.net\r\nRCPT TO:<x@y>", "<bob@x>"])
def test_recipient_that_cannot_be_an_envelope_is_refused_locally(start_server: Any, recipient: str) -> None:
    sink = start_server()
    with SmtpSender(settings(sink), no_secret) as sender, pytest.raises(SendError) as info:
        sender.send("", recipient, MESSAGE)
    assert not info.value.transient
    assert sink.connections == 0


# --- TLS and AUTH --------------------------------------------------------------------------


def test_auth_over_starttls_with_a_trusted_ca(start_server: Any, certs: Certs) -> None:
    sink = start_server(mode="starttls")
    asked: list[SecretSource] = []

    def resolver(source: SecretSource) -> str:
        asked.append(source)
        return PASSWORD

    config = settings(sink, security="starttls", ca_file=certs.ca_file, username="awayd")
    with SmtpSender(config, resolver) as sender:
        sender.send("", "bob@example.net", MESSAGE)
    assert asked == [SecretSource(env="AWAYD_SMTP_PW")]
    assert sink.logins == ["awayd"]
    assert sink.messages[0].tls


def test_implicit_tls_delivers(start_server: Any, certs: Certs) -> None:
    sink = start_server(mode="tls")
    config = settings(sink, security="tls", ca_file=certs.ca_file, username="awayd")
    with SmtpSender(config, lambda _source: PASSWORD) as sender:
        sender.send("", "bob@example.net", MESSAGE)
    assert sink.logins == ["awayd"]
    assert sink.messages[0].tls


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_certificate_from_another_ca_is_refused(start_server: Any, certs: Certs, security: Security) -> None:
    sink = start_server(mode=security)
    config = settings(sink, security=security, ca_file=certs.other_ca_file, username="awayd")
    with SmtpSender(config, lambda _source: PASSWORD) as sender, pytest.raises(SendError) as info:
        sender.send("", "bob@example.net", MESSAGE)
    assert info.value.transient
    assert "certificate not trusted" in str(info.value)
    assert f"127.0.0.1:{sink.port}" in str(info.value)
    assert sink.logins == []
    assert sink.messages == []


def test_default_trust_store_does_not_trust_a_private_ca(start_server: Any) -> None:
    sink = start_server(mode="tls")
    sender = SmtpSender(settings(sink, security="tls"), no_secret)
    with sender, pytest.raises(SendError, match="certificate not trusted"):
        sender.send("", "bob@example.net", MESSAGE)
    assert sink.messages == []


def test_verify_false_accepts_any_certificate(start_server: Any) -> None:
    sink = start_server(mode="starttls")
    with SmtpSender(settings(sink, security="starttls", verify=False), no_secret) as sender:
        sender.send("", "bob@example.net", MESSAGE)
    assert sink.messages[0].tls


def test_starttls_not_offered_is_refused_before_auth(start_server: Any) -> None:
    sink = start_server(mode="none")
    config = settings(sink, security="starttls", username="awayd")
    with SmtpSender(config, no_secret) as sender, pytest.raises(SendError) as info:
        sender.send("", "bob@example.net", MESSAGE)
    assert "does not offer STARTTLS" in str(info.value)
    assert info.value.transient  # a setup problem: the reply stays queued for the fix
    assert sink.messages == []


def test_wrong_password_keeps_the_reply_queued_and_is_never_quoted(
    start_server: Any, certs: Certs
) -> None:
    """A refused AUTH is a setup problem: transient, so the reply waits for the fix."""
    sink = start_server(mode="starttls")
    config = settings(sink, security="starttls", ca_file=certs.ca_file, username="awayd")
    sender = SmtpSender(config, lambda _source: "wrong-" + PASSWORD)
    with sender, pytest.raises(SendError) as info:
        sender.send("", "bob@example.net", MESSAGE)
    assert info.value.transient
    assert info.value.code == 535
    assert "AUTH" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert sink.messages == []


def test_a_refused_password_costs_one_login_with_one_mechanism(
    start_server: Any, certs: Certs
) -> None:
    """smtplib's login() went on to LOGIN after PLAIN got 535: two failures per try."""
    sink = start_server(mode="starttls")
    config = settings(sink, security="starttls", ca_file=certs.ca_file, username="awayd")
    sender = SmtpSender(config, lambda _source: "wrong-" + PASSWORD)
    with sender, pytest.raises(SendError) as info:
        sender.send("", "bob@example.net", MESSAGE)
    assert info.value.scope == "auth"
    assert sink.auth_attempts == ["PLAIN"]


def test_an_unreachable_relay_is_a_relay_fault_not_the_message() -> None:
    config = SmtpSettings(host="127.0.0.1", port=free_port(), tls=TlsSettings(security="none"),
                          helo="awayd.test")
    with SmtpSender(config, no_secret) as sender, pytest.raises(SendError) as info:
        sender.send("", "bob@example.net", MESSAGE)
    assert info.value.scope == "relay"


# --- reply codes and network errors --------------------------------------------------------


def test_4xx_reply_is_transient_with_code_and_server_text(start_server: Any) -> None:
    sink = start_server()
    with SmtpSender(settings(sink), no_secret) as sender, pytest.raises(SendError) as info:
        sender.send("", "tempfail@example.net", MESSAGE)
    assert info.value.transient
    assert info.value.code == 451
    message = str(info.value)
    assert f"127.0.0.1:{sink.port}" in message
    assert "RCPT TO" in message
    assert "mailbox busy" in message


def test_5xx_recipient_is_permanent(start_server: Any) -> None:
    sink = start_server()
    with SmtpSender(settings(sink), no_secret) as sender, pytest.raises(SendError) as info:
        sender.send("", "nouser@example.net", MESSAGE)
    assert not info.value.transient
    assert info.value.code == 550
    assert "no such user" in str(info.value)


def test_5xx_after_data_is_permanent(start_server: Any) -> None:
    sink = start_server()
    with SmtpSender(settings(sink), no_secret) as sender, pytest.raises(SendError) as info:
        sender.send("", "bob@example.net", b"X-Reject-Me: yes\r\n\r\nbody\r\n")
    assert not info.value.transient
    assert info.value.code == 554
    assert "DATA" in str(info.value)


def test_refused_connection_is_transient() -> None:
    port = free_port()  # nothing listens there
    config = SmtpSettings(host="127.0.0.1", port=port, tls=TlsSettings(security="none"), helo="awayd.test")
    with SmtpSender(config, no_secret) as sender, pytest.raises(SendError) as info:
        sender.send("", "bob@example.net", MESSAGE)
    assert info.value.transient
    assert info.value.code is None
    assert f"127.0.0.1:{port}" in str(info.value)


def test_silent_server_times_out_transiently() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel accepts; nobody ever sends a greeting
        port = listener.getsockname()[1]
        config = SmtpSettings(
            host="127.0.0.1",
            port=port,
            tls=TlsSettings(security="none"),
            helo="awayd.test",
            timeout=0.3,
        )
        with SmtpSender(config, no_secret) as sender, pytest.raises(SendError) as info:
            sender.send("", "bob@example.net", MESSAGE)
    assert info.value.transient
    assert "timed out" in str(info.value)


# --- connection reuse ----------------------------------------------------------------------


def test_one_connection_carries_several_messages(start_server: Any) -> None:
    sink = start_server(dsn=True)
    with SmtpSender(settings(sink), no_secret) as sender:
        for n in range(3):
            sender.send("", f"person{n}@example.net", MESSAGE)
    assert sink.connections == 1
    assert [m.rcpt_tos for m in sink.messages] == [[f"person{n}@example.net"] for n in range(3)]


def test_connection_stays_usable_after_a_refused_recipient(start_server: Any) -> None:
    sink = start_server()
    with SmtpSender(settings(sink), no_secret) as sender:
        with pytest.raises(SendError):
            sender.send("", "nouser@example.net", MESSAGE)
        with pytest.raises(SendError):
            sender.send("", "tempfail@example.net", MESSAGE)
        sender.send("", "bob@example.net", MESSAGE)
    assert sink.connections == 1
    assert [m.rcpt_tos for m in sink.messages] == [["bob@example.net"]]


def test_reconnects_once_when_the_server_dropped_the_connection(start_server: Any) -> None:
    sink = start_server()
    with SmtpSender(settings(sink), no_secret) as sender:
        sender.send("", "first@example.net", MESSAGE)
        sink.drop_connections()
        sender.send("", "second@example.net", MESSAGE)
        sender.send("", "third@example.net", MESSAGE)
    assert sink.connections == 2
    assert [m.rcpt_tos[0] for m in sink.messages] == [
        "first@example.net",
        "second@example.net",
        "third@example.net",
    ]


def test_dropped_connection_to_a_server_now_down_is_transient(start_server: Any) -> None:
    sink = start_server()
    sender = SmtpSender(settings(sink), no_secret)
    sender.send("", "first@example.net", MESSAGE)
    sink.drop_connections()
    sink.controller.stop()
    with pytest.raises(SendError) as info:
        sender.send("", "second@example.net", MESSAGE)
    sender.close()
    assert info.value.transient


def test_send_after_close_opens_a_new_connection(start_server: Any) -> None:
    sink = start_server()
    sender = SmtpSender(settings(sink), no_secret)
    sender.send("", "first@example.net", MESSAGE)
    sender.close()
    sender.close()  # idempotent
    sender.send("", "second@example.net", MESSAGE)
    sender.close()
    assert sink.connections == 2
    assert len(sink.messages) == 2
