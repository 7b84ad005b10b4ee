"""Slots against a real kernel fifo: the shared implicit slot first, then
tokens; the exact byte written back; Ctrl-C ends a wait with nothing held."""

import os
import signal
import threading
import time

import pytest

from steve_jobserver.tokens import (
    IMPLICIT,
    ImplicitSlot,
    Jobserver,
    JobserverGone,
    Slots,
    _signals_held_off,
)


@pytest.fixture
def pool(tmp_path):
    """A fifo holding the tokens b'a' and b'b', and a per-run lock file."""
    fifo = str(tmp_path / "jobserver")
    os.mkfifo(fifo)
    keeper = os.open(fifo, os.O_RDWR)  # keeps the fifo's buffer alive
    os.write(keeper, b"ab")
    lock = str(tmp_path / "implicit-slot.lock")
    open(lock, "w").close()
    yield fifo, lock, keeper
    os.close(keeper)


def _in_pipe(fd):
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 64)
    except BlockingIOError:
        return b""
    finally:
        os.set_blocking(fd, True)


def test_implicit_slot_first_then_tokens_and_the_same_bytes_back(pool):
    fifo, lock, keeper = pool
    slots = Slots(Jobserver(fifo), ImplicitSlot(lock))
    first, second, third = slots.acquire(), slots.acquire(), slots.acquire()
    assert first is IMPLICIT and first.implicit
    assert sorted([second.byte, third.byte]) == [b"a", b"b"]
    assert slots.stats.acquired == 3 and slots.stats.implicit == 1
    slots.release(second)
    slots.release(third)
    slots.release(first)
    assert sorted(_in_pipe(keeper)) == sorted(b"ab")
    slots.close()


def test_one_implicit_slot_for_all_workers(pool):
    fifo, lock, _keeper = pool
    worker_a = Slots(Jobserver(fifo), ImplicitSlot(lock))
    worker_b = Slots(Jobserver(fifo), ImplicitSlot(lock))
    assert worker_a.acquire().implicit
    token = worker_b.acquire()
    assert not token.implicit  # the other worker got a token, not a second free slot
    worker_a.close()
    worker_b.release(token)
    assert worker_b.acquire().implicit  # free again once worker_a gave it up
    worker_b.close()


def test_release_all_gives_back_what_is_held(pool):
    fifo, lock, keeper = pool
    slots = Slots(Jobserver(fifo), ImplicitSlot(lock))
    for _ in range(3):
        slots.acquire()
    slots.release_all()
    assert slots.held == []
    assert sorted(_in_pipe(keeper)) == sorted(b"ab")
    slots.close()


def test_a_waiter_gets_a_token_written_back_by_someone_else(pool):
    fifo, lock, keeper = pool
    _in_pipe(keeper)  # empty the pool
    slots = Slots(Jobserver(fifo), None)
    threading.Timer(0.2, lambda: os.write(keeper, b"z")).start()
    started = time.monotonic()
    token = slots.acquire()
    assert token.byte == b"z"
    assert 0.1 < slots.stats.longest_wait_s < 5 and time.monotonic() - started < 5
    slots.close()


def test_ctrl_c_ends_a_wait_with_nothing_held(pool):
    fifo, lock, keeper = pool
    _in_pipe(keeper)
    holder = ImplicitSlot(lock)
    assert holder.try_take()  # another worker holds the implicit slot
    slots = Slots(Jobserver(fifo), ImplicitSlot(lock))
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    previous = signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    try:
        with pytest.raises(KeyboardInterrupt):
            slots.acquire()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert slots.held == []
    assert _in_pipe(keeper) == b""
    slots.close()
    holder.close()


def test_end_of_file_says_the_jobserver_is_gone(tmp_path):
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    path = f"/proc/self/fd/{read_fd}"
    jobserver = Jobserver.__new__(Jobserver)
    jobserver.path, jobserver.fd = path, read_fd
    with pytest.raises(JobserverGone):
        jobserver.try_take()
    jobserver.close()


def _under_raising_alarms(step, seconds=1.0):
    """Run ``step()`` in a loop for ``seconds`` under a SIGALRM every 0.1 ms
    whose handler raises (while armed: only inside the step); stop early
    when SIGINT/SIGTERM are left blocked. Returns (raises, leaked signals)."""

    class Alarm(Exception):
        pass

    armed = [False]

    def raise_when_armed(*_):
        if armed[0]:
            armed[0] = False
            raise Alarm

    original = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    previous = signal.signal(signal.SIGALRM, raise_when_armed)
    raised = 0
    leaked = set()
    deadline = time.monotonic() + seconds
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)
        while not leaked and time.monotonic() < deadline:
            try:
                armed[0] = True
                step()
                armed[0] = False
            except Alarm:
                raised += 1
            leaked = {signal.SIGINT, signal.SIGTERM} & signal.pthread_sigmask(
                signal.SIG_BLOCK, []
            )
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, original)
    return raised, leaked


def test_a_raising_signal_handler_never_leaves_sigint_blocked():
    # CPython runs pending Python handlers after pthread_sigmask changes the
    # mask and on entry to Python frames; one that raises there must not
    # leave SIGINT/SIGTERM blocked for the rest of the worker's life.
    raised, leaked = _under_raising_alarms(lambda: _signals_held_off(lambda: None))
    assert raised > 0 and leaked == set()


def test_acquire_and_release_under_raising_alarms_leave_sigint_unblocked(pool):
    fifo, lock, keeper = pool
    slots = Slots(Jobserver(fifo), ImplicitSlot(lock), poll_interval_s=0.001)

    def step():
        try:
            slots.acquire()
        finally:
            slots.release_all()

    raised, leaked = _under_raising_alarms(step)
    slots.close()
    assert raised > 0 and leaked == set()
