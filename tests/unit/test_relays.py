"""Tests for the per-relay sender thread: queueing, probing a relay that is down, the login hold."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from awayd.core.backoff import Backoff
from awayd.relays import Attempt, Outcome, Relay

WAIT = 10.0


class FakeSender:
    def send(self, envelope_from: str, recipient: str, message: bytes) -> None:
        raise AssertionError("the scripted deliver never sends")

    def close(self) -> None:
        pass


class Events:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool]] = []

    def relay_up(self, relay: str, up: bool) -> None:
        self.calls.append(("relay_up", relay, up))

    def auth_failed(self, relay: str) -> None:
        self.calls.append(("auth_failed", relay, False))


class Script:
    """A deliver function answering from a list of outcomes; records the rows it was given."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        self.rows: list[int] = []
        self.done = threading.Condition()

    def __call__(self, outbox_id: int, sender: Any, relay: str) -> Attempt:
        with self.done:
            self.rows.append(outbox_id)
            outcome = self.outcomes.pop(0) if self.outcomes else Outcome.SENT
            self.done.notify_all()
        return Attempt(outcome, "scripted")

    def wait(self, count: int) -> list[int]:
        deadline = time.monotonic() + WAIT
        with self.done:
            while len(self.rows) < count and time.monotonic() < deadline:
                self.done.wait(0.05)
            return list(self.rows)


@pytest.fixture
def relays() -> Iterator[Callable[..., Relay]]:
    made: list[Relay] = []

    def make(deliver: Any, *, events: Events | None = None, on_up: Any = None,
             auth_hold: float = 60.0) -> Relay:
        relay = Relay("smtp.example.org:587", make_sender=FakeSender, deliver=deliver,
                      store_ok=lambda: True, on_up=on_up or (lambda _relay: None),
                      log=structlog.get_logger("test"), events=events or Events(),
                      probe=Backoff(base=0.05, cap=0.1), auth_hold=auth_hold)
        made.append(relay)
        return relay

    yield make
    for relay in made:
        relay.stop(WAIT)


def test_a_send_that_hangs_holds_only_its_own_relay(relays: Callable[..., Relay]) -> None:
    release = threading.Event()

    def hanging(outbox_id: int, sender: Any, relay: str) -> Attempt:
        release.wait(WAIT)
        return Attempt(Outcome.SENT)

    stuck = relays(hanging)
    other = Script([])
    fine = relays(other)
    stuck.submit([1, 2, 3])  # returns at once although the first send never ends
    fine.submit([4, 5])
    assert other.wait(2) == [4, 5]
    assert not stuck.settled()
    release.set()


def test_rows_already_queued_are_not_queued_twice(relays: Callable[..., Relay]) -> None:
    gate = threading.Event()
    seen: list[int] = []

    def slow(outbox_id: int, sender: Any, relay: str) -> Attempt:
        gate.wait(WAIT)
        seen.append(outbox_id)
        return Attempt(Outcome.SENT)

    relay = relays(slow)
    relay.submit([1, 2])
    relay.submit([1, 2, 2])
    gate.set()
    deadline = time.monotonic() + WAIT
    while not relay.settled() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [1, 2]


def test_a_relay_that_comes_back_is_reported_up_and_drained(relays: Callable[..., Relay]) -> None:
    script = Script([Outcome.RELAY_DOWN, Outcome.RELAY_DOWN, Outcome.SENT])
    events = Events()
    drained: list[Relay] = []
    relay = relays(script, events=events, on_up=drained.append)
    relay.submit([7])
    assert script.wait(3) == [7, 7, 7]  # the same row probes the relay until it answers
    deadline = time.monotonic() + WAIT
    while not drained and time.monotonic() < deadline:
        time.sleep(0.01)
    assert drained == [relay]
    name = "smtp.example.org:587"
    assert events.calls == [("relay_up", name, True), ("relay_up", name, False),
                            ("relay_up", name, True)]


def test_a_refused_login_holds_the_relay_and_keeps_the_rows(relays: Callable[..., Relay]) -> None:
    script = Script([Outcome.AUTH_REFUSED])
    events = Events()
    relay = relays(script, events=events, auth_hold=60.0)
    relay.submit([1, 2])
    assert script.wait(1) == [1]
    time.sleep(0.5)
    assert script.rows == [1]  # no second login during the hold, for neither row
    assert relay.auth_refused
    assert relay.settled()  # nothing can go now: `run --once` may stop waiting
    assert ("auth_failed", "smtp.example.org:587", False) in events.calls


def test_after_the_hold_one_try_and_success_clears_the_refusal(relays: Callable[..., Relay]) -> None:
    script = Script([Outcome.AUTH_REFUSED, Outcome.SENT])
    relay = relays(script, auth_hold=0.2)
    relay.submit([1])
    assert script.wait(2) == [1, 1]
    deadline = time.monotonic() + WAIT
    while relay.auth_refused and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not relay.auth_refused
