"""One `awayd run` per state file: an exclusive flock on `<state>.lock` holding the owner's PID."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from awayd.errors import StateError


def lock_path(state: Path) -> Path:
    """The lock file beside the state database: `state.db` → `state.db.lock`."""
    return state.with_name(state.name + ".lock")


class StateLock:
    """Held by a running daemon for its whole life; admin commands never take it.

    The kernel releases a flock when its process dies, however it dies (kill -9 included), so
    a stale lock file never blocks the next start. The file is never deleted: removing it
    while another process waits on it would let two processes hold "the" lock at once.
    """

    def __init__(self, path: Path, fd: int) -> None:
        """Use StateLock.acquire()."""
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state: Path, pid: int | None = None) -> StateLock:
        """Take the lock of the state database `state` without waiting; write `pid` in it.

        Raises:
            StateError: transient (exit 75) when another process holds it, naming the state
                file and that process's PID; permanent when the lock file cannot be made.
        """
        path = lock_path(state)
        try:
            state.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            error = StateError(f"state database {state}: cannot create the lock file {path}:"
                               f" {err.strerror or err}")
            error.transient = err.errno in (errno.ENOSPC, errno.EDQUOT)  # space comes back
            raise error from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)  # e.g. ENOLCK: a file system without locks
                raise StateError(f"state database {state}: cannot lock {path}:"
                                 f" {err.strerror or err}") from err
            holder = _read_pid(fd)
            os.close(fd)
            who = f"PID {holder}" if holder else "another process"
            error = StateError(
                f"state database {state} is in use by another awayd run ({who}, lock file"
                f" {path}); only one daemon may use a state file at a time"
            )
            error.transient = True
            raise error from err
        # The PID only helps the message of a second start; on a full disk the lock is held
        # without it (and opening the store then says what is wrong).
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid() if pid is None else pid}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # no PID of a process that no longer holds it
            os.close(fd)

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
