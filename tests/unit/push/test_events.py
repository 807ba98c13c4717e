"""The push request body: MessageNew events with user, folder, UID and UIDVALIDITY."""

from __future__ import annotations

import json

import pytest

from awayd.push.events import EventError, PushEvent, parse_body


def body(**top: object) -> bytes:
    return json.dumps(top).encode()


def test_message_new_events_are_read_and_other_kinds_skipped() -> None:
    found = parse_body(body(user="a@example.org", events=[
        {"event": "MessageNew", "folder": "INBOX", "uid": 7, "uidvalidity": 99},
        {"event": "FlagsSet", "folder": "INBOX", "uid": 7},
        {"event": "MessageNew", "folder": "Travail/Été", "uid": 8, "uidvalidity": 99}]))
    assert found == [PushEvent("a@example.org", "INBOX", 7, 99),
                     PushEvent("a@example.org", "Travail/Été", 8, 99)]


@pytest.mark.parametrize(("raw", "says"), [
    (b"\xff", "not UTF-8 JSON"),
    (b"[]", "expected a JSON object"),
    (body(events=[]), "user: expected a user name"),
    (body(user="a", events={}), "events: expected a list"),
    (body(user="a", events=[1]), "events[0]: expected an object"),
    (body(user="a", events=[{"event": "MessageNew", "uid": 1, "uidvalidity": 1}]),
     "events[0].folder"),
    (body(user="a", events=[{"event": "MessageNew", "folder": "INBOX", "uid": 0,
                             "uidvalidity": 1}]), "events[0].uid"),
    (body(user="a", events=[{"event": "MessageNew", "folder": "INBOX", "uid": True,
                             "uidvalidity": 1}]), "events[0].uid"),
    (body(user="a", events=[{"event": "MessageNew", "folder": "INBOX", "uid": 3,
                             "uidvalidity": 2**32}]), "events[0].uidvalidity"),
])
def test_a_body_of_another_shape_is_refused_with_what_is_wrong(raw: bytes, says: str) -> None:
    with pytest.raises(EventError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_body(raw)
