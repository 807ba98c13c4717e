"""Watch one IMAP folder read-only (EXAMINE, BODY.PEEK): UID status, new headers, IDLE or NOOP.

The service owns checkpoints; this module offers the primitives:

    watcher = FolderWatcher(mailbox.imap, "INBOX")
    status = watcher.connect()              # compare status.uidvalidity with the checkpoint
    last = checkpoint or status.uidnext - 1  # first start: never answer the backlog
    while running:
        while batch := watcher.fetch_new(last):
            ...                              # decide, record, then
            last = batch[-1].uid
        if not watcher.uses_idle:
            sleep(poll_interval)             # wait() only NOOPs in polling mode
        watcher.wait(timeout=30)

A FolderWatcher holds one connection and is not thread-safe: one thread drives it. Every
failure is a SourceError (`transient` tells a network problem from a refused login or a
missing folder); after a connection-level failure the watcher is disconnected and
`connect()` starts over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from awayd.adapters.imap_conn import (
    SecretResolver,
    WarningLogger,
    close_quietly,
    connection_lost,
    idle_check,
    open_client,
    scan_responses,
    take_stashed_news,
    translate_errors,
)
from awayd.adapters.secrets import resolve_secret
from awayd.config.model import ImapSettings
from awayd.core.opening import TEXT_PREFIX
from awayd.errors import SourceError

__all__ = [
    "FETCH_BATCH",
    "IDLE_REFRESH",
    "TEXT_PEEK_BYTES",
    "FetchedMessage",
    "FolderStatus",
    "FolderWatcher",
    "append_message",
]

#: UIDs per UID FETCH command: keeps one response in the low megabytes.
FETCH_BATCH = 500
#: RFC 2177 asks clients to re-issue IDLE within 29 minutes; 25 leaves room for NAT timeouts.
IDLE_REFRESH = 25 * 60.0
#: How much of the body `fetch_new(with_text=True)` peeks at (guards, language, rule match):
#: exactly what the core reads, so `awayd explain` on a whole file decides as the daemon does.
TEXT_PEEK_BYTES = TEXT_PREFIX

_SEEN = b"\\Seen"
_HEADER_KEY = b"BODY[HEADER]"
_TEXT_KEY = b"BODY[TEXT]<0>"
#: idle_check() returning this much earlier than asked, with nothing, means EOF or a torn line.
_EARLY = 0.05


class FolderStatus(NamedTuple):
    """What a checkpoint is compared with: UIDs are only meaningful under one UIDVALIDITY."""

    uidvalidity: int
    uidnext: int


@dataclass(frozen=True)
class FetchedMessage:
    """One message as the core parses it: header bytes, plus the first KiB of text if asked."""

    uid: int
    internaldate: datetime  # aware, UTC: when the server stored the message
    raw: bytes


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    # INTERNALDATE always carries a zone; a naive value can only come from a broken server.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class FolderWatcher:
    """A read-only view of one folder over one connection: EXAMINE and BODY.PEEK only.

    Args:
        settings: server, credentials, TLS; `settings.idle` False forces NOOP polling.
        folder: the folder to EXAMINE.
        secret_resolver: turns `settings.password` (or the oauth2 command) into text.
        log: receives the warning when TLS verification is off (default: structlog).
        idle_refresh: seconds after which an IDLE is ended and re-issued.
        monotonic: the clock for IDLE bookkeeping.
    """

    def __init__(
        self,
        settings: ImapSettings,
        folder: str = "INBOX",
        *,
        secret_resolver: SecretResolver = resolve_secret,
        log: WarningLogger | None = None,
        idle_refresh: float = IDLE_REFRESH,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.folder = folder
        self._resolve = secret_resolver
        self._log = log
        self._idle_refresh = idle_refresh
        self._clock = monotonic
        self._client: Any = None
        self._uses_idle = False
        self._idle_since: float | None = None
        self._news = False

    def __enter__(self) -> FolderWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def uses_idle(self) -> bool:
        """True when wait() blocks in IDLE; False when it only NOOPs and the caller sleeps."""
        return self._uses_idle

    def connect(self) -> FolderStatus:
        """(Re)connect, log in and EXAMINE the folder; return its UIDVALIDITY and UIDNEXT.

        Call fetch_new() from the checkpoint before the first wait(): mail that arrived
        while disconnected is not announced again.
        """
        self.close()
        self._client = client = open_client(self.settings, resolve_secret=self._resolve, log=self._log)
        with self._op(f"EXAMINE {self.folder}", refusal_transient=False):
            info = client.select_folder(self.folder, readonly=True)
            status = self._status_of(client, info)
            uses_idle = self.settings.idle and bool(client.has_capability("IDLE"))
            take_stashed_news(client)
        self._uses_idle = uses_idle
        self._news = False
        return status

    def refresh(self) -> FolderStatus:
        """EXAMINE the folder again on the open connection (a pooled one): its current view."""
        client = self._ready()
        with self._op(f"EXAMINE {self.folder}", refusal_transient=False):
            info = client.select_folder(self.folder, readonly=True)
            status = self._status_of(client, info)
            take_stashed_news(client)
        self._news = False
        return status

    def status(self) -> FolderStatus:
        """Ask the server for the folder's current UIDVALIDITY and UIDNEXT (NOOP, STATUS).

        Dovecot answers STATUS on the selected folder from the session's view, which only a
        NOOP brings up to date.
        """
        client = self._ready()
        self._news = self._noop(client) or self._news
        with self._op(f"STATUS {self.folder}"):
            found = client.folder_status(self.folder, [b"UIDVALIDITY", b"UIDNEXT"])
            stashed = take_stashed_news(client)
            status = FolderStatus(int(found[b"UIDVALIDITY"]), int(found[b"UIDNEXT"]))
        self._news = self._news or stashed
        return status

    def fetch_new(
        self, after_uid: int, limit: int = FETCH_BATCH, with_text: bool = False
    ) -> list[FetchedMessage]:
        """Return up to `limit` messages with a UID above `after_uid`, lowest UIDs first.

        Each carries `BODY.PEEK[HEADER]` (and, with `with_text`, the first TEXT_PEEK_BYTES
        of `BODY.PEEK[TEXT]` appended) and its INTERNALDATE; no flag changes. Fewer than
        `limit` means the folder is drained for now. UIDs are fetched FETCH_BATCH at a time.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        after_uid = max(after_uid, 0)
        client = self._ready()
        self._news = False  # this search sees everything announced so far
        with self._op("UID SEARCH"):
            # `n:*` always includes the highest UID, even below n: hence the filter.
            found = client.search(["UID", f"{after_uid + 1}:*"])
            stashed = take_stashed_news(client)
        self._news = self._news or stashed
        uids = sorted(uid for uid in (int(u) for u in found) if uid > after_uid)[:limit]
        items = [b"BODY.PEEK[HEADER]", b"INTERNALDATE"]
        if with_text:
            items.append(f"BODY.PEEK[TEXT]<0.{TEXT_PEEK_BYTES}>".encode())
        messages: list[FetchedMessage] = []
        for start in range(0, len(uids), FETCH_BATCH):
            chunk = uids[start : start + FETCH_BATCH]
            with self._op("UID FETCH"):
                data = client.fetch(chunk, items)
                stashed = take_stashed_news(client)
            self._news = self._news or stashed
            for uid in chunk:
                message = self._message(uid, data.get(uid), with_text=with_text)
                if message is not None:
                    messages.append(message)
        return messages

    def wait(self, timeout: float) -> bool:
        """Return True when new mail may have arrived since the last fetch_new().

        With IDLE: block up to `timeout` seconds (Dovecot announces deliveries about 0.5 s
        late); the IDLE stays open across calls that time out and is re-issued every
        `idle_refresh` seconds. Without IDLE, or with `timeout` 0 while no IDLE is open:
        one NOOP, no sleeping. After True, call fetch_new() directly.
        """
        client = self._ready(end_idle=False)
        if self._news:
            self._news = False
            return True
        if not self._uses_idle or (timeout <= 0 and self._idle_since is None):
            return self._noop(client)  # wait(0): check now, without entering IDLE
        return self._idle_wait(client, max(timeout, 0.0))

    def append(self, folder: str, raw: bytes) -> None:
        """APPEND `raw` to `folder` flagged \\Seen on this connection (e.g. save_copy).

        A refusal (missing folder, quota) is a SourceError that keeps the connection.
        """
        client = self._ready()
        with self._op(f"APPEND to {folder}", keep_on_refusal=True, refusal_transient=False):
            client.append(folder, raw, flags=(_SEEN,))
            stashed = take_stashed_news(client)
        self._news = self._news or stashed

    def close(self) -> None:
        """LOGOUT and close; safe to call twice or after a failure."""
        client, self._client = self._client, None
        idling, self._idle_since = self._idle_since is not None, None
        self._news = False
        if client is None:
            return
        if idling:
            try:
                client.socket().settimeout(5.0)
                client.idle_done()
            except Exception:
                # A broken IDLE: LOGOUT would only wait for the timeout again.
                close_quietly(client, logout=False)
                return
        close_quietly(client)

    # -- internals ---------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"IMAP {self.settings.username} at {self.settings.host}:{self.settings.port}"

    @contextmanager
    def _op(
        self, what: str, *, keep_on_refusal: bool = False, refusal_transient: bool = True
    ) -> Iterator[None]:
        """Translate errors; drop the connection unless it was only a NO to this command."""
        try:
            with translate_errors(self.settings, what, refusal_transient=refusal_transient):
                yield
        except SourceError as err:
            if not (keep_on_refusal and not connection_lost(err)):
                self._drop()
            raise
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        client, self._client = self._client, None
        self._idle_since = None
        if client is not None:
            close_quietly(client, logout=False)

    def _ready(self, *, end_idle: bool = True) -> Any:
        client = self._client
        if client is None:
            raise SourceError(f"{self._where}: folder {self.folder} is not connected")
        if end_idle and self._idle_since is not None:
            self._news = self._end_idle(client) or self._news
        return client

    def _status_of(self, client: Any, info: dict[bytes, Any]) -> FolderStatus:
        uidvalidity, uidnext = info.get(b"UIDVALIDITY"), info.get(b"UIDNEXT")
        if uidvalidity is None or uidnext is None:
            # Both are optional in a SELECT response (RFC 3501 §6.3.1); STATUS must have them.
            found = client.folder_status(self.folder, [b"UIDVALIDITY", b"UIDNEXT"])
            uidvalidity = uidvalidity if uidvalidity is not None else found.get(b"UIDVALIDITY")
            uidnext = uidnext if uidnext is not None else found.get(b"UIDNEXT")
        if uidvalidity is None or uidnext is None:
            raise SourceError(
                f"{self._where}: folder {self.folder} has no UIDVALIDITY/UIDNEXT;"
                " awayd needs persistent UIDs",
                transient=False,
            )
        return FolderStatus(int(uidvalidity), int(uidnext))

    def _message(self, uid: int, item: Any, *, with_text: bool) -> FetchedMessage | None:
        if not isinstance(item, dict) or item.get(_HEADER_KEY) is None:
            return None  # expunged between SEARCH and FETCH
        internaldate = _utc(item.get(b"INTERNALDATE"))
        if internaldate is None:
            # Without an arrival time the too-old guard cannot protect old mail: refuse.
            raise SourceError(
                f"{self._where}: no INTERNALDATE for UID {uid} in {self.folder}", transient=False
            )
        raw = bytes(item[_HEADER_KEY])
        text = item.get(_TEXT_KEY) if with_text else None
        if text:
            raw += bytes(text)
        return FetchedMessage(uid=uid, internaldate=internaldate, raw=raw)

    def _noop(self, client: Any) -> bool:
        """NOOP: the server syncs the session and announces what arrived; True on EXISTS."""
        with self._op("NOOP"):
            _, responses = client.noop()
            stashed = take_stashed_news(client)
        return scan_responses(responses)[0] or stashed

    def _start_idle(self, client: Any) -> float | None:
        """Enter IDLE and return when; None, without idling, when mail is already waiting."""
        # Dovecot's IDLE reports changes made after it starts, not those since the last
        # command: a delivery between two waits would wait for the next one (or for
        # mailbox_idle_check_interval). The NOOP closes that gap down to one round trip.
        if self._noop(client):
            return None
        with self._op("IDLE"):
            client.idle()
        self._idle_since = started = self._clock()
        return started

    def _end_idle(self, client: Any) -> bool:
        self._idle_since = None
        with self._op("IDLE (DONE)"):
            _, responses = client.idle_done()
            stashed = take_stashed_news(client)
        return scan_responses(responses)[0] or stashed

    def _idle_wait(self, client: Any, timeout: float) -> bool:
        deadline = self._clock() + timeout
        while True:
            now = self._clock()
            since = self._idle_since
            if since is None:
                started = self._start_idle(client)
                if started is None:
                    return True
                now = since = started
            elif now - since >= self._idle_refresh:
                if self._end_idle(client):
                    return True
                continue
            remaining = deadline - now
            if remaining <= 0:
                return False
            span = max(0.0, min(remaining, since + self._idle_refresh - now))
            with self._op("IDLE"):
                responses = idle_check(client, span)
            news, bye = scan_responses(responses)
            if bye:
                self._drop()
                raise SourceError(f"{self._where}: the server ended the session (BYE) while idling")
            if news:
                self._end_idle(client)
                return True
            if not responses and self._clock() - now + _EARLY < span and self._end_idle(client):
                # Woken with nothing to read: the DONE above either fails (connection lost,
                # raised) or succeeds, and IDLE is simply re-issued.
                return True


def append_message(
    settings: ImapSettings,
    folder: str,
    raw: bytes,
    *,
    secret_resolver: SecretResolver = resolve_secret,
    log: WarningLogger | None = None,
) -> None:
    """APPEND `raw` to `folder` flagged \\Seen over a short-lived connection of its own.

    For callers on another thread than the folder's watcher (a watcher is not thread-safe).
    """
    client = open_client(settings, resolve_secret=secret_resolver, log=log)
    try:
        with translate_errors(settings, f"APPEND to {folder}", refusal_transient=False):
            client.append(folder, raw, flags=(_SEEN,))
    finally:
        close_quietly(client)
