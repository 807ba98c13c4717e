"""decide(): one message in, one Decision out: the single path shared by daemon, explain and tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from awayd.config.model import Mailbox, Rule
from awayd.config.read import show_duration
from awayd.core import reasons as r
from awayd.core.absence import OwnerAbsence, with_absence
from awayd.core.compose import Reply, compose
from awayd.core.guards import HEAD, TABLE, Context, envelope, first_refusal, sender_of
from awayd.core.history import HistoryView
from awayd.core.language import choose
from awayd.core.message import Message, parse
from awayd.core.own import answering
from awayd.core.rules import select
from awayd.errors import RenderError, StateError

#: Makes a fresh Message-ID for a reply from the domain of the answering address.
MessageIdFactory = Callable[[str], str]


@dataclass(frozen=True)
class Decision:
    decision: str  # "reply" | "skip"
    reason: str
    detail: str
    rule: Rule | None = None
    sender: str | None = None  # envelope sender as written
    sender_key: str | None = None  # lowercased, SRS unwrapped
    message_id: str | None = None  # of the incoming message
    reply: Reply | None = None

    @property
    def rule_name(self) -> str | None:
        return self.rule.name if self.rule is not None else None


def _skip(reason: str, detail: str, *, rule: Rule | None = None, sender: str | None = None,
          sender_key: str | None = None, message_id: str | None = None) -> Decision:
    return Decision("skip", reason, detail, rule, sender, sender_key, message_id)


def _suppressed(mailbox: Mailbox, history: HistoryView, sender_key: str) -> bool:
    domain = "@" + sender_key.rpartition("@")[2]
    if sender_key in mailbox.suppression or domain in mailbox.suppression:
        return True
    return history.is_suppressed(mailbox.name, sender_key)


def _over_cap(mailbox: Mailbox, history: HistoryView, now: datetime) -> str | None:
    cap = mailbox.max_replies
    if history.replies_since(mailbox.name, now - timedelta(hours=1)) >= cap.per_hour:
        return f"{cap.per_hour} replies in the last hour"
    if history.replies_since(mailbox.name, now - timedelta(days=1)) >= cap.per_day:
        return f"{cap.per_day} replies in the last day"
    return None


def _id_domain(address: str) -> str:
    """The domain for our Message-ID, in ASCII (an IDN as A-labels) so it needs no SMTPUTF8."""
    domain = address.rpartition("@")[2]
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "awayd.invalid"


def decide(raw: bytes, mailbox: Mailbox, *, now: datetime, history: HistoryView,
           new_message_id: MessageIdFactory, arrival: datetime | None = None,
           envelope_from: str | None = None, absence: OwnerAbsence | None = None) -> Decision:
    """Decide whether and how to answer `raw` for `mailbox` at `now` (aware).

    `arrival` is the IMAP INTERNALDATE; when None the topmost Received: date is used, else
    `now`. `envelope_from` defaults to the mailbox's SMTP setting (the null sender).
    `absence`, the owner's absence set by `awayd away`, acts as a rule placed first.
    Never raises: unparseable input is `malformed`, a failing template `render-error`.
    """
    try:
        message = parse(raw)
    except (ValueError, TypeError, IndexError, UnicodeError, LookupError) as err:
        return _skip(r.MALFORMED, f"cannot parse: {err}")
    return decide_message(message, mailbox, now=now, history=history,
                          new_message_id=new_message_id, arrival=arrival,
                          envelope_from=envelope_from, absence=absence)


def decide_message(message: Message, mailbox: Mailbox, *, now: datetime, history: HistoryView,
                   new_message_id: MessageIdFactory, arrival: datetime | None = None,
                   envelope_from: str | None = None, absence: OwnerAbsence | None = None) -> Decision:
    """decide() for an already parsed message."""
    mailbox = with_absence(mailbox, absence)
    context = Context(message, mailbox, now, arrival)
    refused = first_refusal(context, HEAD)
    if refused is not None:
        return _skip(*refused, message_id=message.message_id)
    sender = sender_of(message, mailbox)
    env = envelope(message, mailbox, sender)

    def skip(reason: str, detail: str, rule: Rule | None = None) -> Decision:
        return _skip(reason, detail, rule=rule, sender=sender, sender_key=env.sender_key,
                     message_id=message.message_id)

    context = Context(message, mailbox, now, arrival, sender, env.sender_key)
    refused = first_refusal(context, TABLE)
    if refused is not None:
        return skip(*refused)
    selection = select(message, mailbox, env, now)
    rule = selection.rule
    if rule is None or selection.reason != r.REPLY:
        return skip(selection.reason, selection.detail, rule=rule)
    if _suppressed(mailbox, history, env.sender_key):
        return skip(r.SUPPRESSED, f"{env.sender_key} is on the opt-out list", rule=rule)
    if rule.interval > timedelta(0) and history.replied_since(
        mailbox.name, env.sender_key, rule.handle, now - rule.interval
    ):
        return skip(r.ALREADY_REPLIED,
                    f"{env.sender_key} got rule {rule.name!r}'s reply within {show_duration(rule.interval)}",
                    rule=rule)
    capped = _over_cap(mailbox, history, now)
    if capped is not None:
        return skip(r.RATE_LIMIT, f"circuit breaker: {capped}", rule=rule)
    available = (mailbox.language, *(lang for lang, _ in rule.translations))
    language = choose(message, available, mailbox.language)
    templates = rule.templates_for(language) or rule.templates
    if envelope_from is None:
        envelope_from = mailbox.smtp.envelope_from if mailbox.smtp is not None else ""
    # a rule for some of the addresses answers from the first of those the sender wrote
    reply_from = env.reply_from
    if rule.match is not None and rule.match.to:
        reply_from = answering(mailbox, env.written, rule.match.to) or reply_from
    try:
        reply = compose(message, mailbox, rule, templates, language=language, sender=sender,
                        recipient=reply_from, envelope_from=envelope_from, now=now,
                        message_id=new_message_id(_id_domain(reply_from)))
    except RenderError as err:
        return skip(r.RENDER_ERROR, str(err), rule=rule)
    return Decision("reply", r.REPLY, selection.detail, rule=rule, sender=sender,
                    sender_key=env.sender_key, message_id=message.message_id, reply=reply)


@dataclass(frozen=True)
class Judged:
    """A decision with the reply's wire bytes; `error` says what failed, if anything did."""

    decision: Decision
    wire: bytes | None = None
    error: str | None = None


def judge(raw: bytes, mailbox: Mailbox, *, now: datetime, history: HistoryView,
          new_message_id: MessageIdFactory, arrival: datetime | None = None,
          absence: OwnerAbsence | None = None) -> Judged:
    """decide() and serialise the reply, as the daemon records it and `explain` shows it.

    No error while handling one message escapes: a failure while deciding makes the message
    `malformed`, a failure while writing the reply `render-error`, so one bad message never
    stops a folder. Only a StateError (the history could not be read: the store's fault, not
    the message's) is raised, so that the message is decided again later.
    """
    try:
        decision = decide(raw, mailbox, now=now, history=history, new_message_id=new_message_id,
                          arrival=arrival, absence=absence)
    except StateError:
        raise
    except Exception as err:  # deliberate: see the docstring
        return Judged(Decision("skip", r.MALFORMED, f"engine error: {err!r}"), error=repr(err))
    if decision.reply is None:
        return Judged(decision)
    try:
        return Judged(decision, decision.reply.to_bytes())
    except Exception as err:  # deliberate: see the docstring
        failed = replace(decision, decision="skip", reason=r.RENDER_ERROR, reply=None,
                         detail=f"cannot write the reply: {err!r}")
        return Judged(failed, error=repr(err))
