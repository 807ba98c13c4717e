"""Machine mail by content: reports, bounce and auto-reply wording, and the signals of a person.

The header guards catch well-behaved machines. These checks catch the rest when the envelope
looks human (a broken MTA or a forwarder that rewrote the null Return-Path): the MIME shape of
a report, the subjects and opening words of the major MTAs, filters and auto-responders in the
major languages. Wording is weaker evidence than a header, so a real mail client's User-Agent or
X-Mailer outweighs it; the MIME shape does not. Only the first TEXT_PREFIX bytes of the body are
read, which is what the daemon fetches.
"""

from __future__ import annotations

import re
from functools import lru_cache

from awayd.core.message import Message
from awayd.core.opening import TEXT_PREFIX

#: Phrase sets, each behind the words it cannot match without, and the union of those words.
Gated = tuple[frozenset[str], tuple[tuple[frozenset[str], re.Pattern[str]], ...]]

#: Punctuation that separates words (one pattern pass: str.translate looks up each character).
_PUNCT = re.compile("[" + re.escape("!\"#$%&()*+,./:;<=>?@[\\]^_`{|}~«»“”‘’…") + "]")


def _gated(*groups: tuple[tuple[str, ...], str]) -> Gated:
    compiled = tuple((frozenset(words), re.compile(pattern)) for words, pattern in groups)
    return frozenset().union(*(gate for gate, _ in compiled)), compiled


@lru_cache(maxsize=64)
def _words(text: str) -> frozenset[str]:
    """The words of an opening text (cached: several guards ask about the same text)."""
    return frozenset(_PUNCT.sub(" ", text).split())


def _first(gated: Gated, text: str) -> str | None:
    """The first phrase found, trying only the sets whose words the text has: most text has none."""
    union, groups = gated
    words = _words(text)
    if union.isdisjoint(words):
        return None
    for gate, pattern in groups:
        if not gate.isdisjoint(words):
            m = pattern.search(text)
            if m:
                return m.group(0)
    return None


_REPORT_PART = re.compile(
    rb"content-type:[ \t]*message/(global-)?(delivery-status|feedback-report|disposition-notification)",
    re.IGNORECASE,
)
_REPORT_TYPE = re.compile(r"report-type\s*=\s*\"?([a-z0-9.+-]+)")
_TAG = r"^\s*(\[[^\]]{0,40}\]\s*)*"  # a filter's [SPAM] or [EXTERNAL] tag before the words

_BOUNCE_SUBJECT = re.compile(
    _TAG + r"("
    r"undeliver(able|ed)\b|non[- ]?deliver(able|y)\b|returned mail\b|return(ed)? to sender"
    r"|mail delivery (failed|failure|warning|notification|error|problem|report)"
    r"|delivery (status notification|notification|failure|has failed)"
    r"|delivery (failed|report|problem|delayed|warning|error)(\s*[:(]|\s*$)"
    r"|failure notice|failed delivery|delayed mail|message delayed"
    r"|mail (could not|couldn't|cannot) be delivered"
    r"|(could not|cannot|unable to) deliver (your |the )?(message|mail|e-?mail)"
    r"|message (delivery )?(not delivered|undeliverable|failure|failed|delivery failure)"
    r"|warning: (could not send|message delayed|delayed)|mail system error|notice of delivery failure"
    r"|unzustellbar|nicht zustellbar|zustellung fehlgeschlagen|benachrichtigung zum"
    r"|übermittlungsstatus|non remis|non distribuable|échec de (la )?(remise|distribution)"
    r"|message non remis|notification d'état de (la )?remise|rapport de non-remise"
    r"|no se (puede|pudo) entregar|no entregado|imposible entregar|error de entrega"
    r"|notificación de estado de (la )?entrega|onbestelbaar|niet bezorgd|kan niet worden bezorgd"
    r"|impossibile recapitare|mancato recapito|non recapitat|não (é possível|foi possível) entregar"
    r"|não entregue|falha na entrega|olevererbar|ikke leveret|kan ikke leveres|kunde inte levereras"
    r"|nie można dostarczyć|niedostarczon|nedoručiteln|nelze doručit|kézbesíthetetlen"
    r"|teslim edilemedi|iletilemedi|недоставлен|не доставлен|не удалось доставить"
    r"|無法傳遞|无法投递|無法投遞|配信不能|配信エラー|전달 실패"
    r"|(virus|malware|worm)( found| detected| alert| warning| notification| in |!)"
    r"|(banned|blocked) (file|content|attachment|message|e-?mail)|mail security alert"
    r"|(your )?(message|e-?mail|mail) (was |has been )?(blocked|quarantined|rejected)\b"
    r"|content filter|attachment (removed|blocked|stripped)"
    r"|(symantec|mcafee|sophos|trend ?micro|interscan|eset|kaspersky|anti-?virus|mail ?scanner)\b"
    r".{0,60}\b(detected|alert|notification|quarantin|blocked|violation|replaced|removed|found)"
    r")",
)

_SMTP_CODES = ("421", "450", "451", "452", "454", "500", "501", "502", "503", "504", "530", "535",
               "550", "551", "552", "553", "554", "571")
#: Opening words of bounces and filter notices, each set behind the words it cannot match
#: without: a few substring tests instead of one long alternation over every text.
_BOUNCE_TEXT = _gated(
    (("system",), r"this is the mail system at host"),
    (("deliver", "delivered", "delivery", "undeliverable", "undelivered", "deliverable",
      "non-delivery", "nondelivery"),
     r"created automatically by mail delivery software|(wasn't|was not) able to deliver your message"
     r"|delivery to the following recipients? (has )?(failed|was unsuccessful)"
     r"|delivery has failed to these recipients"
     r"|(could not|couldn't|cannot|can't) be delivered to (the following|one or more|all|any|some)"
     r"|your (e-?mail |original )?message (could not|couldn't|cannot|can't|was not|wasn't"
     r"|has not been) (be )?delivered|unable to deliver|could not deliver (the |your )?message"
     r"|delivery status notification|message delivery (has )?failed|was undeliverable"
     r"|undeliverable (mail|message)|non[- ]?delivery (report|notification)"
     r"|delivery of (your |the )?(e-?mail|message|mail)\b.{0,120}\b(postponed|delayed|failed)"),
    (("original",), r"the original message was received at"),
    (("fatal",), r"permanent fatal error"),
    (("qmail-send",), r"this is the qmail-send program"),
    (("reach",), r"did not reach (some or all of the intended recipients|the following recipient)"),
    (("failed",), r"failed permanently|failed recipients?:"),
    (("returned",), r"-+ ?returned mail ?-+"),
    (("said",), r"(remote host|server) said: ?[45]\d\d"),
    (_SMTP_CODES, r"\b[45]\d\d[ -][45]\.\d{1,3}\.\d{1,3}\b"),
    (("remis", "délivré", "distribué", "delivre"),
     r"n'a pas pu être (remis|délivré|distribué)|n'a pas pu etre (remis|delivre)|non remis"),
    (("zugestellt", "unzustellbar"),
     r"konnte nicht zugestellt werden|unzustellbar|nicht zugestellt"),
    (("entregado", "entregada", "entregar", "entregue"),
     r"no (pudo|se pudo|ha podido) ser entregad|no se (pudo|puede) entregar"
     r"|não (pôde|foi possível|pode) ser entregue"),
    (("recapitato", "recapitata", "recapitati", "recapitate", "recapitare"),
     r"non è stato (possibile )?recapitat|impossibile recapitare"),
    (("bezorgd",), r"kon niet (worden )?bezorgd"),
    (("można", "mogła", "może"), r"nie (można|mogła|może) (zostać |być )?dostarcz"),
    (("доставлено", "доставить"),
     r"не может быть доставлено|не было доставлено|не удалось доставить"),
    (("virus", "anti-virus", "antivirus"),
     r"(a |the )?virus (was )?(found|detected)|(contains|contained|infected with)"
     r" (a |the )?virus|virus alert|anti-?virus (system|software|scanner|gateway|has)"),
    (("quarantined",), r"(has been|was) quarantined"),
    (("banned",), r"banned (file|content|attachment)"),
    (("blocked",), r"blocked by (our|the) (content|spam|virus|mail) (filter|policy|gateway)"),
    (("filter", "filtering", "security"),
     r"(content filter(ing)?|mail security) (system|software|scanner|gateway|has)"),
)

_AUTO_SUBJECT_STRONG = re.compile(
    _TAG + r"("
    r"auto(matic|matisch|matique|mated)?[ -]?(reply|response|answer|antwort|réponse|respuesta)\s*[:\-]"
    r"|auto(matic)?[ -]?(reply|response)\s*$|autoreply\b|auto:|out of (the )?office\s*(auto ?reply)?\s*[:\-]"
    r"|out of (the )?office( auto ?reply| reply| notification| notice)?\s*$"
    r"|(i am|i'm) (currently )?(out of (the )?office|away|on (vacation|holiday|leave))\b"
    r"|away from (my|the) (office|desk|e-?mail)\b|on (vacation|holiday|leave)\s*[:\-]"
    r"|r[ée]ponse automatique|absence du bureau|absent(e)? du bureau|abwesenheitsnotiz"
    r"|automatische antwort|abwesend\s*[:\-]|respuesta autom[aá]tica|fuera de la oficina"
    r"|risposta automatica|fuori sede\s*[:\-]|fuori ufficio|resposta autom[aá]tica"
    r"|fora do escrit[oó]rio|automatisch antwoord|afwezig\s*[:\-]|ausente\s*[:\-]"
    r"|automatyczna odpowied[zź]|automatick[aá] odpov[eě]d|automatikus v[aá]lasz|autosvar"
    r"|autom[aā]tisk[aā] atbilde|automaattinen vastaus|otomatik yan[ıi]t|автоматический ответ"
    r"|αυτόματη απάντηση"
    r"|自动回复|自動回覆|自動返信|자동 응답"
    r")",
)
#: A machine saying it is one: enough on its own (a person's mail client outweighs it).
_AUTO_TEXT = _gated(
    (("automatic", "automated", "auto-generated", "automatically", "automatique", "automatische",
      "automatisch", "automática", "automatica"),
     r"this is an? (automatic|automated|auto-generated|automatically generated)"
     r" (reply|response|answer|message)|(apologi[sz]e|sorry) for this automatic reply"
     r"|this (e-?mail|message|reply) (is|was) (sent |generated )?automatically"
     r"|ceci est une réponse automatique|(dies ist )?eine automatische antwort"
     r"|diese nachricht wurde automatisch|esta es una respuesta automática"
     r"|questa è una risposta automatica|dit is een automatisch antwoord"
     r"|esta é uma resposta automática"),
    (("accept", "allow"),
     r"only (accept|allow) (incoming )?(e-?mail|messages) (only )?from (senders|people) (i|who)"),
    (("approved", "approval", "verification", "verify"),
     r"(messages|mail) only from senders i have approved|list of approved senders"
     r"|your (e-?mail|message) (is|has been) (pending|waiting) (for )?(approval|verification)"
     r"|verify (that )?you are (a )?(human|real person|not a (robot|spammer))"),
    (("link",), r"(click|follow) (on )?(the|this) (following )?link (below )?to"
                r" (have your (e-?mail )?address|verify|confirm|complete)"),
    (("challenge", "challenge-response"), r"challenge[- /]response"),
    (("protected", "boxbe"),
     r"protected by (bluebottle|boxbe|spam ?arrest|mailblocks|choicemail)|boxbe"),
)
#: Being away: a person writes that too ("Out of office coverage plan"), so it counts only
#: after the thanks for the message that auto-replies open with.
_AWAY_TEXT = re.compile(
    r"(i am|i'm|i will be|i'll be) (currently )?(out of (the )?office|away from (the|my) (office|desk)"
    r"|on (vacation|holiday|leave)|travel(l)?ing|away|absent)"
    r"|je suis (actuellement )?(absente?|en congés?)|ich bin .{0,40}(abwesend|nicht im büro|im urlaub)"
    r"|estoy (fuera de la oficina|de vacaciones|ausente)|sono (fuori ufficio|in ferie|assente)"
    r"|ik ben (afwezig|met vakantie|niet aanwezig)|will (be back|return) (on|in|at|to)"
)
_ACK_TEXT = re.compile(
    r"^(dear [^,.]{0,40}[,.]? )?(thank you|thanks|many thanks) (very much )?for (your|the)"
    r" (e-?mail|message|mail|note)|^merci (pour|de) votre (message|mail|courriel|e-mail)"
    r"|^(vielen )?dank für ihre (nachricht|e-?mail|mail)|^gracias por su (mensaje|correo|e-?mail)"
    r"|^grazie per (il suo|la sua|il tuo|la tua) (messaggio|mail|e-?mail)"
    r"|^bedankt voor (uw|je) (bericht|e-?mail|mail)"
)
_MODERATION = re.compile(
    r"awaits moderator approval|held (for|until) (the )?(list )?(moderat|approval|owner)"
    r"|requires? (moderator|list owner|owner|admin(istrator)?) approval|held for moderation"
    r"|pending (moderator|moderation|list owner) approval|awaiting moderat|needs? moderator approval"
    r"|post(ing)? to .{1,80} requires approval|message (has been|was) held",
)
#: Names of mail clients a person types in, as they appear in User-Agent and X-Mailer.
_CLIENT_WORDS = (
    "outlook", "thunderbird", "apple mail", "applemail", "iphone", "ipad", "mutt", "evolution",
    "kmail", "claws", "sylpheed", "roundcube", "sogo", "horde", "squirrelmail", "rainloop",
    "snappymail", "k-9", "fairemail", "seamonkey", "icedove", "eudora", "the bat", "pegasus",
    "mailmate", "postbox", "airmail", "spark", "mailspring", "mew ", "gnus", "emacs", "alpine",
    "pine ", "notmuch", "alot", "aerc", "geary", "mailpile", "zimbra", "lotus notes", "becky",
    "opera", "foxmail", "yahoomail", "windows mail", "windows live mail", "em client", "emclient",
    "mozilla", "messenger-pro", "vm ", "balsa", "trojit", "canary", "superhuman", "proton",
    "tutanota", "mailbird", "bluemail", "newton", "blackberry", "android", "samsung", "sparrow",
    "gmail", "webmail", "aquamail", "edison", "polymail", "fastmail", "mimestream", "marcoposo",
)
#: Mail systems that put their name in X-Mailer: a server, gateway or library is not a person.
_NOT_CLIENT = re.compile(
    r"internet agent|mail service|gateway|daemon|\bmta\b|smtp|server|mailer-daemon|exchange|filter"
    r"|scanner|security|virus|bounce|cron|php|perl|mime::|python|java|nodemailer|swiftmailer"
    r"|phpmailer|mailman|sympa|listserv|majordomo|ezmlm|mailchimp|sendgrid|amazon|postfix|sendmail"
    r"|exim|qmail|notification|noreply|no-reply|socketlabs",
)
_SYSTEM_NAME = re.compile(
    r"^\W*(mail(er)?[- ]?daemon|mail delivery (sub)?system|mail delivery service|mail delivery"
    r"|postmaster|mail administrator|mail system|mail(er)? system administrator|mail transport"
    r"|internet mail delivery|delivery status notification|mail delivery agent|mailer|e-?mail delivery"
    r"|mail security|e-?mail security|content filter|anti-?virus|virus ?wall|mail ?scanner"
    r"|symantec.*|mcafee.*|sophos.*|trend ?micro.*|interscan.*|barracuda.*|mimecast.*"
    r"|cron daemon|anacron|logwatch|logcheck)\W*$",
)
_CRON_SUBJECT = re.compile(
    r"^\s*(cron|anacron) <[^<>\s]+@[^<>\s]+>|^\s*output (of|from) your (cron|at)?\s*job", re.IGNORECASE
)
_DAEMON_LOCALS = frozenset({
    "root", "daemon", "nobody", "cron", "anacron", "logwatch", "logcheck", "www-data", "apache",
    "nagios", "zabbix", "munin", "smartd", "mdadm", "backup", "amavis", "clamav", "spamd", "fetchmail",
})
#: Words one of which every name _SYSTEM_NAME knows holds: most names are spared the pattern.
_SYSTEM_NAME_WORDS = ("mail", "postmaster", "daemon", "delivery", "virus", "scanner", "security",
                      "filter", "symantec", "mcafee", "sophos", "trend", "interscan", "barracuda",
                      "mimecast", "cron", "logwatch", "logcheck", "system")
#: Cheap substring tests before the long alternations: most text holds none of these words.
_REPORT_WORDS = (b"elivery-status", b"eedback-report", b"isposition-notification", b"ELIVERY-STATUS")
_MODERATION_WORDS = frozenset({"moderator", "moderation", "moderators", "approval", "held"})


def human_client(message: Message) -> str | None:
    """The User-Agent or X-Mailer of a mail client a person types in, if there is one."""
    for name in ("user-agent", "x-mailer", "x-newsreader"):
        for value in message.get_all(name):
            low = value.lower()
            if any(map(low.__contains__, _CLIENT_WORDS)) and not _NOT_CLIENT.search(low):
                return value.strip()[:60]
    return None


def report_kind(message: Message) -> str | None:
    """The report a multipart/report or a report part says it is: 'delivery-status', …, ''."""
    ct = message.content_type
    if ct.startswith("multipart/report"):
        m = _REPORT_TYPE.search(ct)
        return m.group(1) if m else ""
    if ct.startswith(("message/delivery-status", "message/global-delivery-status")):
        return "delivery-status"
    if ct.startswith("message/disposition-notification"):
        return "disposition-notification"
    if ct.startswith("message/feedback-report"):
        return "feedback-report"
    body = message.body[:TEXT_PREFIX]
    if ct.startswith("multipart/") and any(map(body.__contains__, _REPORT_WORDS)):
        part = _REPORT_PART.search(body)
        if part:
            return part.group(2).decode().lower()
    return None


#: How a subject _BOUNCE_SUBJECT or _AUTO_SUBJECT_STRONG knows can start ("[" for a filter's tag):
#: a cheap test that spares the patterns most subjects.
_BOUNCE_STARTS = (
    "[", "undeliver", "non", "return", "mail", "delivery", "failure", "failed", "delayed",
    "message", "could", "cannot", "unable", "warning", "notice", "unzustellbar", "nicht",
    "zustellung", "benachrichtigung", "übermittlungsstatus", "échec", "notification", "rapport",
    "no ", "imposible", "error", "notificación", "onbestelbaar", "niet", "kan ", "impossibile",
    "mancato", "não", "falha", "olevererbar", "ikke", "kunde", "nie", "nedoručiteln", "nelze",
    "kézbesíthetetlen", "teslim", "iletilemedi", "недоставлен", "не ", "無法", "无法", "配信", "전달",
    "virus", "malware", "worm", "banned", "blocked", "your", "e-mail", "email", "content",
    "attachment", "symantec", "mcafee", "sophos", "trend", "interscan", "eset", "kaspersky", "anti",
)
_AUTO_STARTS = (
    "[", "auto", "out of", "i am", "i'm", "away", "on ", "réponse", "reponse", "absen", "abwesen",
    "respuesta", "fuera", "risposta", "fuori", "resposta", "fora", "afwezig", "ausente", "otomatik",
    "автоматический", "αυτόματη", "自动", "自動", "자동",
)

def bounce_subject(subject: str) -> bool:
    lowered = subject.lower().lstrip()
    return lowered.startswith(_BOUNCE_STARTS) and bool(_BOUNCE_SUBJECT.match(lowered))


def bounce_text(text: str) -> str | None:
    return _first(_BOUNCE_TEXT, text)


def strong_auto_subject(subject: str) -> bool:
    """`Automatic reply:`, `Auto:`, `Out of Office:` and the like: what clients and servers write.

    A subject that only mentions an absence ("Out of office coverage plan") is not one."""
    lowered = subject.lower().lstrip()
    return lowered.startswith(_AUTO_STARTS) and bool(_AUTO_SUBJECT_STRONG.match(lowered))


def auto_text(text: str) -> str | None:
    """The opening of an automatic reply: one that says so, or thanks and then says away."""
    found = _first(_AUTO_TEXT, text)
    if found:
        return found
    if _ACK_TEXT.match(text):
        away = _AWAY_TEXT.search(text, 0, 400)
        if away:
            return away.group(0)
    return None


def moderation(subject: str, text: str) -> str | None:
    lowered = subject.lower()
    if _MODERATION_WORDS.isdisjoint(_words(lowered)) and _MODERATION_WORDS.isdisjoint(_words(text)):
        return None
    m = _MODERATION.search(lowered) or _MODERATION.search(text)
    return m.group(0) if m else None


def system_display_name(name: str) -> bool:
    if not name:
        return False
    lowered = name.lower()
    return any(map(lowered.__contains__, _SYSTEM_NAME_WORDS)) and bool(_SYSTEM_NAME.match(lowered))


def cron_mail(message: Message, local_parts: list[str]) -> str | None:
    """Output of cron, at and friends: X-Cron-Env, a `Cron <user@host>` subject, or root@ and the
    like with no mail client at all."""
    if message.has("x-cron-env"):
        return "X-Cron-Env header: output of a cron job"
    if message.subject.lstrip()[:6].lower().startswith(("cron", "anacro", "output")) and (
            _CRON_SUBJECT.match(message.subject)):
        return f"subject {message.subject[:60]!r} is a cron job's output"
    for local in local_parts:
        if local in _DAEMON_LOCALS and human_client(message) is None:
            return f"{local}@ without a mail client: a system account's mail"
    return None
