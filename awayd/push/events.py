"""Parse the body of a push request (contrib/dovecot/awayd-push.lua) into event values."""

from __future__ import annotations

import json
from dataclasses import dataclass

#: A request body larger than this is refused (one delivery transaction is a few hundred bytes).
MAX_BODY = 64 * 1024
#: Events of other kinds are accepted and ignored: only a new message can need an answer.
MESSAGE_NEW = "MessageNew"


@dataclass(frozen=True)
class PushEvent:
    """One new message, as Dovecot announced it."""

    user: str
    folder: str
    uid: int
    uidvalidity: int


class EventError(ValueError):
    """The body is not the JSON the Lua script sends; the message says what is wrong."""


def _positive(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**32:
        raise EventError(f"{what}: expected a number from 1 to 2^32-1, found {value!r}"[:200])
    return value


def parse_body(body: bytes) -> list[PushEvent]:
    """`{"user": U, "events": [{"event": "MessageNew", "folder": F, "uid": N,
    "uidvalidity": V}, ...]}` → the MessageNew events; any other event kind is skipped.

    Raises:
        EventError: not UTF-8 JSON of that shape.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise EventError(f"not UTF-8 JSON: {err}"[:200]) from None
    if not isinstance(data, dict):
        raise EventError("expected a JSON object with user and events")
    user, events = data.get("user"), data.get("events")
    if not isinstance(user, str) or not user or len(user) > 320:
        raise EventError(f"user: expected a user name, found {user!r}"[:200])
    if not isinstance(events, list):
        raise EventError("events: expected a list")
    found: list[PushEvent] = []
    for i, item in enumerate(events):
        if not isinstance(item, dict):
            raise EventError(f"events[{i}]: expected an object")
        if item.get("event") != MESSAGE_NEW:
            continue
        folder = item.get("folder")
        if not isinstance(folder, str) or not folder or len(folder) > 1000:
            raise EventError(f"events[{i}].folder: expected a folder name, found {folder!r}"[:200])
        found.append(PushEvent(user=user, folder=folder,
                               uid=_positive(item.get("uid"), f"events[{i}].uid"),
                               uidvalidity=_positive(item.get("uidvalidity"),
                                                     f"events[{i}].uidvalidity")))
    return found
