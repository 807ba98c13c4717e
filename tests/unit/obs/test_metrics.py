"""Tests for awayd.obs.metrics: counters, scrape-time gauges, health and the HTTP endpoint."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from awayd.errors import AwaydError, ConfigError
from awayd.obs.metrics import Metrics, MetricsServer, parse_listen, start_http


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics(clock: FakeClock) -> Metrics:
    return Metrics(clock=clock)


@pytest.fixture
def server(metrics: Metrics) -> Iterator[MetricsServer]:
    handle = metrics.start_http("127.0.0.1:0")
    yield handle
    handle.stop()


def _value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def _get(handle: MetricsServer, path: str, method: str = "GET") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read().decode("utf-8")
        return response.status, response.getheader("Content-Type") or "", body
    finally:
        conn.close()


def test_counters_count_per_mailbox(metrics: Metrics) -> None:
    metrics.reply_sent("alice")
    metrics.reply_sent("alice")
    metrics.reply_sent("bob")
    metrics.reply_failed("alice")
    metrics.seen("alice")
    metrics.reconnect("bob")

    assert _value(metrics, "awayd_replies_sent_total", mailbox="alice") == 2
    assert _value(metrics, "awayd_replies_sent_total", mailbox="bob") == 1
    assert _value(metrics, "awayd_replies_failed_total", mailbox="alice") == 1
    assert _value(metrics, "awayd_messages_seen_total", mailbox="alice") == 1
    assert _value(metrics, "awayd_imap_reconnects_total", mailbox="bob") == 1


def test_skips_are_counted_by_mailbox_and_reason(metrics: Metrics) -> None:
    metrics.skipped("alice", "list")
    metrics.skipped("alice", "list")
    metrics.skipped("alice", "auto-submitted")

    assert _value(metrics, "awayd_skips_total", mailbox="alice", reason="list") == 2
    assert _value(metrics, "awayd_skips_total", mailbox="alice", reason="auto-submitted") == 1


def test_outbox_depth_and_up_gauges(metrics: Metrics) -> None:
    assert _value(metrics, "awayd_up") == 1
    metrics.set_outbox_depth(4)
    assert _value(metrics, "awayd_outbox_depth") == 4
    metrics.set_outbox_depth(0)
    assert _value(metrics, "awayd_outbox_depth") == 0
    metrics.set_up(False)
    assert _value(metrics, "awayd_up") == 0


def test_registered_mailbox_series_start_at_zero(metrics: Metrics) -> None:
    metrics.register_mailbox("alice", 60)
    assert _value(metrics, "awayd_replies_sent_total", mailbox="alice") == 0
    assert _value(metrics, "awayd_messages_seen_total", mailbox="alice") == 0


def test_each_instance_has_its_own_registry(clock: FakeClock) -> None:
    first, second = Metrics(clock=clock), Metrics(clock=clock)
    first.reply_sent("alice")
    assert _value(first, "awayd_replies_sent_total", mailbox="alice") == 1
    assert _value(second, "awayd_replies_sent_total", mailbox="alice") is None


def test_last_check_timestamp_is_the_registration_until_the_first_check(
    metrics: Metrics, clock: FakeClock
) -> None:
    registered = clock.now
    metrics.register_mailbox("alice", 60)
    clock.advance(5)
    assert _value(metrics, "awayd_last_check_timestamp_seconds", mailbox="alice") == registered
    metrics.checked("alice", at=clock.now)
    checked = clock.now
    clock.advance(42)
    assert _value(metrics, "awayd_last_check_timestamp_seconds", mailbox="alice") == checked
    assert _value(metrics, "awayd_poll_interval_seconds", mailbox="alice") == 60


def test_exposition_follows_prometheus_naming(metrics: Metrics) -> None:
    """Counters end in _total, no _created series, units are suffixes, no help names a file."""
    metrics.register_mailbox("alice", 60)
    metrics.reply_sent("alice")
    metrics.skipped("alice", "list")
    families = list(text_string_to_metric_families(metrics.exposition().decode()))
    names = {sample.name for family in families for sample in family.samples}
    assert not [n for n in names if n.endswith("_created")]
    for family in families:
        if family.type == "counter":
            assert all(s.name == family.name + "_total" for s in family.samples), family.name
        assert "seconds_since" not in family.name
        assert ".md" not in family.documentation, family.name
    assert "awayd_last_check_timestamp_seconds" in names


def test_an_older_check_never_moves_the_last_check_back(metrics: Metrics, clock: FakeClock) -> None:
    metrics.register_mailbox("alice", 60)
    metrics.checked("alice", at=clock.now)
    metrics.checked("alice", at=clock.now - 100)
    clock.advance(1)
    assert _value(metrics, "awayd_last_check_timestamp_seconds", mailbox="alice") == clock.now - 1


def test_health_is_ok_while_every_mailbox_was_checked_within_three_intervals(
    metrics: Metrics, clock: FakeClock
) -> None:
    metrics.register_mailbox("alice", 60)
    metrics.register_mailbox("bob", 30)
    metrics.checked("alice", at=clock.now)
    metrics.checked("bob", at=clock.now)
    clock.advance(90)
    assert metrics.health().ok
    clock.advance(1)
    health = metrics.health()
    assert not health.ok
    assert health.stale == ("bob",)
    clock.advance(90)
    assert metrics.health().stale == ("alice", "bob")


def test_a_mailbox_never_checked_is_stale_three_intervals_after_registration(
    metrics: Metrics, clock: FakeClock
) -> None:
    metrics.register_mailbox("alice", 60)
    clock.advance(180)
    assert metrics.health().ok
    clock.advance(1)
    assert metrics.health().stale == ("alice",)


def test_short_poll_intervals_get_a_minimum_grace(metrics: Metrics, clock: FakeClock) -> None:
    metrics.register_mailbox("fast", 1)
    clock.advance(9)
    assert metrics.health().ok
    clock.advance(2)
    assert metrics.health().stale == ("fast",)


def test_unregistered_mailboxes_do_not_count_for_health(metrics: Metrics, clock: FakeClock) -> None:
    metrics.register_mailbox("alice", 60)
    metrics.checked("ghost", at=clock.now)
    metrics.unregister_mailbox("alice")
    clock.advance(10_000)
    assert metrics.health().ok
    assert _value(metrics, "awayd_last_check_timestamp_seconds", mailbox="alice") is None


def test_reregistering_keeps_the_last_check_and_updates_the_interval(
    metrics: Metrics, clock: FakeClock
) -> None:
    metrics.register_mailbox("alice", 60)
    metrics.checked("alice", at=clock.now)
    clock.advance(200)
    assert metrics.health().stale == ("alice",)
    metrics.register_mailbox("alice", 120)
    assert metrics.health().ok


def test_health_is_ok_with_no_mailboxes(metrics: Metrics) -> None:
    assert metrics.health().ok


def test_http_metrics_serves_the_text_exposition(
    metrics: Metrics, clock: FakeClock, server: MetricsServer
) -> None:
    metrics.register_mailbox("alice", 60)
    metrics.reply_sent("alice")
    metrics.skipped("alice", "precedence")
    clock.advance(7)

    status, ctype, body = _get(server, "/metrics")

    assert status == 200
    assert ctype.startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    assert samples[("awayd_replies_sent_total", (("mailbox", "alice"),))] == 1
    key = ("awayd_skips_total", (("mailbox", "alice"), ("reason", "precedence")))
    assert samples[key] == 1
    assert samples[("awayd_last_check_timestamp_seconds", (("mailbox", "alice"),))] == clock.now - 7
    assert samples[("awayd_up", ())] == 1
    assert ("awayd_outbox_depth", ()) in samples


def test_http_healthz_is_200_ok_when_fresh(metrics: Metrics, clock: FakeClock, server: MetricsServer) -> None:
    metrics.register_mailbox("alice", 60)
    metrics.checked("alice", at=clock.now)
    assert _get(server, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")


def test_http_healthz_is_503_listing_stale_mailboxes(
    metrics: Metrics, clock: FakeClock, server: MetricsServer
) -> None:
    metrics.register_mailbox("alice", 60)
    metrics.register_mailbox("bob", 60)
    metrics.register_mailbox("carol", 600)
    metrics.checked("alice", at=clock.now)
    clock.advance(181)

    status, _, body = _get(server, "/healthz")

    assert status == 503
    assert body == "stale: alice, bob\n"


def test_http_head_and_unknown_paths(server: MetricsServer) -> None:
    status, _, body = _get(server, "/healthz", method="HEAD")
    assert (status, body) == (200, "")
    assert _get(server, "/nope")[0] == 404
    assert _get(server, "/metrics?name[]=awayd_up")[0] == 200


def test_stop_frees_the_port(metrics: Metrics) -> None:
    handle = metrics.start_http("127.0.0.1:0")
    port = handle.port
    assert port > 0
    handle.stop()
    handle.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_module_level_start_http_serves_the_given_metrics(metrics: Metrics) -> None:
    metrics.reply_sent("alice")
    handle = start_http("127.0.0.1:0", metrics)
    try:
        status, _, body = _get(handle, "/metrics")
    finally:
        handle.stop()
    assert status == 200
    assert 'awayd_replies_sent_total{mailbox="alice"} 1.0' in body


def test_a_busy_port_is_a_transient_error(metrics: Metrics, server: MetricsServer) -> None:
    with pytest.raises(AwaydError) as caught:
        metrics.start_http(f"127.0.0.1:{server.port}")
    assert caught.value.transient
    assert not isinstance(caught.value, ConfigError)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9387", ("127.0.0.1", 9387)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9387", ("::1", 9387)),
    ],
)
def test_parse_listen_accepts_host_port(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9387", ":9387", "127.0.0.1:", "127.0.0.1:http", "h:70000"])
def test_parse_listen_rejects_malformed_addresses(listen: str) -> None:
    with pytest.raises(ConfigError, match="metrics listen"):
        parse_listen(listen)


def test_healthz_is_503_naming_a_relay_that_refused_our_login_until_it_accepts(
    metrics: Metrics, server: MetricsServer
) -> None:
    metrics.relay_up("smtp.example.org:587", True)
    metrics.auth_failed("smtp.example.org:587")
    metrics.relay_up("smtp.example.org:587", False)
    assert _get(server, "/healthz")[::2] == (503, "smtp auth refused: smtp.example.org:587\n")
    assert _value(metrics, "awayd_smtp_auth_failures_total", relay="smtp.example.org:587") == 1
    assert _value(metrics, "awayd_relay_up", relay="smtp.example.org:587") == 0

    metrics.relay_up("smtp.example.org:587", True)
    assert _get(server, "/healthz")[::2] == (200, "ok\n")
    assert _value(metrics, "awayd_relay_up", relay="smtp.example.org:587") == 1


def test_message_errors_and_store_failures_are_counted(metrics: Metrics) -> None:
    metrics.message_error("alice", "render-error")
    metrics.store_failed()
    metrics.store_failed()
    assert _value(metrics, "awayd_message_errors_total", mailbox="alice", reason="render-error") == 1
    assert _value(metrics, "awayd_store_write_failures_total") == 2
