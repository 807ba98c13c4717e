"""The stable reason codes of DESIGN §4, in guard order (a contract of logs, metrics and explain)."""

from __future__ import annotations

from typing import Final

MALFORMED: Final = "malformed"
NULL_SENDER: Final = "null-sender"
NO_RETURN_PATH: Final = "no-return-path"
INVALID_SENDER: Final = "invalid-sender"
SELF: Final = "self"
LOOP: Final = "loop"
SYSTEM_SENDER: Final = "system-sender"
NOREPLY_SENDER: Final = "noreply-sender"
AUTO_SUBMITTED: Final = "auto-submitted"
X_AUTO_RESPONSE_SUPPRESS: Final = "x-auto-response-suppress"
PRECEDENCE: Final = "precedence"
LIST: Final = "list"
DSN: Final = "dsn"
MDN: Final = "mdn"
AUTORESPONDER: Final = "autoresponder"
BULK: Final = "bulk"
SPAM: Final = "spam"
UNAUTHENTICATED: Final = "unauthenticated"
NOT_ADDRESSED: Final = "not-addressed"
TOO_OLD: Final = "too-old"
NO_RULE: Final = "no-rule"
OUTSIDE_SCHEDULE: Final = "outside-schedule"
AUDIENCE: Final = "audience"
SUPPRESSED: Final = "suppressed"
ALREADY_REPLIED: Final = "already-replied"
RATE_LIMIT: Final = "rate-limit"
REPLY: Final = "reply"
#: Not a guard: a reply template failed for this message; it is skipped and logged.
RENDER_ERROR: Final = "render-error"

#: Every skip reason in evaluation order, then the reply outcome.
ALL: Final[tuple[str, ...]] = (
    MALFORMED, NULL_SENDER, NO_RETURN_PATH, INVALID_SENDER, SELF, LOOP, SYSTEM_SENDER,
    NOREPLY_SENDER, AUTO_SUBMITTED, X_AUTO_RESPONSE_SUPPRESS, PRECEDENCE, LIST, DSN, MDN,
    AUTORESPONDER, BULK, SPAM, UNAUTHENTICATED, NOT_ADDRESSED, TOO_OLD, NO_RULE,
    OUTSIDE_SCHEDULE, AUDIENCE, SUPPRESSED, ALREADY_REPLIED, RATE_LIMIT, REPLY,
)
