"""Taking and giving back job slots: jobserver tokens and the run's one
implicit slot.

The GNU make jobserver rules this follows (make's manual, "POSIX
Jobserver Interaction"):

- every client has one implicit slot it never reads a token for; here the
  whole pytest-xdist run shares ONE, an ``flock`` on a per-run lock file, so
  the run never exceeds pool + 1 and whichever worker is free takes it;
- read one byte per token and write back exactly the byte that was read;
- return every token, also when a test fails, on KeyboardInterrupt and when
  the worker exits.

Waiting is a ``poll`` with a short timeout plus non-blocking reads on a
private ``O_NONBLOCK`` descriptor (never a blocking read: that cannot be
interrupted cleanly, and a poller lets the steve daemon reserve a token for
us), so Ctrl-C lands between two polls and the implicit slot is re-checked
while we wait.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Set, TypeVar

#: How often a waiting worker looks at the implicit slot again (seconds).
POLL_INTERVAL_S = 0.02

_T = TypeVar("_T")

# Signals whose Python handlers raise (KeyboardInterrupt, pytest's own
# SIGTERM handling): held off only between a read and its bookkeeping.
_HELD_OFF = {signal.SIGINT, signal.SIGTERM}


@dataclass(frozen=True)
class Token:
    """One job slot: a byte read from the jobserver, or the implicit slot."""

    byte: Optional[bytes]

    @property
    def implicit(self) -> bool:
        return self.byte is None


IMPLICIT = Token(None)


class JobserverGone(Exception):
    """The jobserver closed (read returned end of file)."""


class Jobserver:
    """A jobserver reached by path (fifo, CUSE device or steve's FUSE file),
    opened read-write on a private non-blocking descriptor."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    def try_take(self) -> Optional[bytes]:
        """One token byte, or None when none is free now."""
        try:
            byte = os.read(self.fd, 1)
        except (BlockingIOError, InterruptedError):
            return None
        if byte == b"":
            raise JobserverGone(f"the jobserver {self.path} was closed")
        return byte

    def wait_readable(self, timeout_s: float) -> None:
        """Poll for a token (the steve daemon reserves one for a poller)."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.poll(max(0, int(timeout_s * 1000)))

    def give_back(self, byte: bytes) -> None:
        """Write back exactly the byte that was read."""
        while True:
            try:
                if os.write(self.fd, byte) == 1:
                    return
            except (BlockingIOError, InterruptedError):
                select.select([], [self.fd], [], 0.1)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class ImplicitSlot:
    """The run's one implicit slot: an exclusive ``flock`` on the per-run
    lock file the pytest-xdist controller created. The kernel drops the lock
    when a worker dies, so a crash cannot lose it."""

    def __init__(self, lock_path: str) -> None:
        self.fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)

    def try_take(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
                return False
            raise

    def give_back(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


try:  # the C function itself: signal.pthread_sigmask is a Python wrapper,
    # and entering any Python frame may run a pending Python signal handler.
    import _signal as _signal_c
except ImportError:  # not CPython
    _signal_c = signal  # type: ignore[assignment]
_sigmask: Optional[Callable[[int, Iterable[int]], Set[int]]] = getattr(
    _signal_c, "pthread_sigmask", None
)


def _signals_held_off(body: Callable[..., _T], *args: Any) -> _T:
    """``body(*args)`` with SIGINT/SIGTERM blocked, so a KeyboardInterrupt
    cannot land between reading a token and writing down that we hold it. A
    signal that came before is raised by the blocking call (before the
    read); one that comes during is raised when the mask is restored (after
    the bookkeeping).

    No exception may leave them blocked, and CPython runs pending Python
    handlers (which may raise) after pthread_sigmask changes the mask and
    on entry to every Python frame. So: the mask in force is saved first
    (an empty SIG_BLOCK changes nothing), the block happens inside the try
    whose finally restores it, and both go straight to the C function. Not a
    context manager: ``__exit__`` (or @contextmanager's glue) is a Python
    frame that can raise on entry, before it restores anything."""
    if _sigmask is None:  # no pthread_sigmask here
        return body(*args)
    saved = _sigmask(signal.SIG_BLOCK, ())
    try:
        _sigmask(signal.SIG_BLOCK, _HELD_OFF)
        return body(*args)
    finally:
        _sigmask(signal.SIG_SETMASK, saved)


@dataclass
class WaitStats:
    acquired: int = 0
    implicit: int = 0
    waits: int = 0
    total_wait_s: float = 0.0
    longest_wait_s: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Slots:
    """Where a worker gets its slot for a collection or a test: the shared
    implicit slot when it is free, else a token from the jobserver."""

    def __init__(
        self,
        jobserver: Optional[Jobserver],
        implicit: Optional[ImplicitSlot],
        poll_interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self.jobserver = jobserver
        self.implicit = implicit
        self.poll_interval_s = poll_interval_s
        self.held: List[Token] = []
        self.stats = WaitStats()

    def _take_now(self) -> Optional[Token]:
        # flock would grant the same descriptor twice: one implicit slot per worker.
        holds_implicit = any(token.implicit for token in self.held)
        if self.implicit is not None and not holds_implicit and self.implicit.try_take():
            self.held.append(IMPLICIT)
            return IMPLICIT
        if self.jobserver is None:
            return None
        byte = self.jobserver.try_take()
        if byte is None:
            return None
        token = Token(byte)
        self.held.append(token)
        return token

    def acquire(self) -> Token:
        """Wait for a slot; KeyboardInterrupt (Ctrl-C) ends the wait with
        nothing held. Raises JobserverGone when the jobserver closes."""
        started = time.monotonic()
        polled = False
        while True:
            token = _signals_held_off(self._take, polled)
            if token is not None:
                self._count(token, time.monotonic() - started if polled else 0.0)
                return token
            if self.jobserver is None:
                time.sleep(self.poll_interval_s)
            else:
                self.jobserver.wait_readable(self.poll_interval_s)
            polled = True

    def _take(self, polled: bool) -> Optional[Token]:
        token = self._take_now()
        if token is not None and token.implicit and polled:
            self._drop_reservation()
        return token

    def _drop_reservation(self) -> None:
        # We polled, so the steve daemon may have reserved a token for us
        # that we no longer need: take it and give it straight back, so it
        # goes to the next waiter now rather than when the reservation expires.
        if self.jobserver is None:
            return
        byte = self.jobserver.try_take()
        if byte is not None:
            self.jobserver.give_back(byte)

    def _count(self, token: Token, waited_s: float) -> None:
        self.stats.acquired += 1
        if token.implicit:
            self.stats.implicit += 1
        if waited_s > 0:
            self.stats.waits += 1
            self.stats.total_wait_s += waited_s
            self.stats.longest_wait_s = max(self.stats.longest_wait_s, waited_s)

    def release(self, token: Token) -> None:
        _signals_held_off(self._release_now, token)

    def _release_now(self, token: Token) -> None:
        if token in self.held:
            self.held.remove(token)
            if token.implicit:
                if self.implicit is not None:
                    self.implicit.give_back()
            elif self.jobserver is not None and token.byte is not None:
                self.jobserver.give_back(token.byte)

    def release_all(self) -> None:
        for token in list(self.held):
            with contextlib.suppress(OSError):
                self.release(token)

    def close(self) -> None:
        self.release_all()
        if self.jobserver is not None:
            self.jobserver.close()
        if self.implicit is not None:
            self.implicit.close()
