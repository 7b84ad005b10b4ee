#!/usr/bin/python3
"""Jobserver clients for the CUSE checks inside the VM (python3 only, no packages).

Scenario subcommands print one line per check, "PASS name" or
"FAIL name: what happened"; guest-checks.sh counts them. Helper subcommands
(hold, blocking-read, poll-wait, nonblocking-read) are the peer processes
the scenarios start: every check is about separate processes, because the
daemon keeps its ledger per process (DESIGN.md, "The jobserver protocol as
served").

Every wait has a deadline; nothing sleeps to synchronise. A process is known
to be blocked in the kernel by its /proc/PID/syscall and state.
"""

import errno
import os
import select
import signal
import stat
import subprocess
import sys
import time

TOKEN = b"+"
SYS_READ = 0
SYS_POLL = 7
SYS_PPOLL = 271


def result(name: str, ok: bool, detail: str = "") -> bool:
    if ok:
        print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)
    else:
        print(f"FAIL {name}: {detail}", flush=True)
    return ok


class Deadline(Exception):
    pass


def _alarm(_signum, _frame):
    raise Deadline()


def read_with_deadline(fd: int, size: int, seconds: float) -> bytes:
    """A blocking read that gives up (the daemon sees an interrupt) after `seconds`."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return os.read(fd, size)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def syscall_and_state(pid: int) -> tuple[int | None, str]:
    try:
        with open(f"/proc/{pid}/syscall") as handle:
            first = handle.read().split()[0]
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None, "?"
    return (int(first) if first.lstrip("-").isdigit() else None), state


def wait_blocked_in(pid: int, syscalls: set[int], seconds: float) -> bool:
    """Wait until `pid` sleeps inside one of `syscalls` (it reached the kernel)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        number, state = syscall_and_state(pid)
        if number in syscalls and state in ("S", "D"):
            return True
        time.sleep(0.01)
    return False


class Peer:
    """A helper subprocess speaking one line per event on stdout."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.buffer = b""

    def expect(self, prefix: str, seconds: float) -> str | None:
        """The next stdout line if it starts with `prefix` within `seconds`, else None."""
        end = time.monotonic() + seconds
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = end - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\n", 1)
        line = raw.decode(errors="replace").strip()
        return line if line.startswith(prefix) else f"unexpected: {line!r}"

    def tell(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self, seconds: float = 10) -> int | None:
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


# ---------------------------------------------------------------- helpers


def helper_hold(path: str, count: str) -> None:
    """Take `count` tokens with blocking reads, then obey stdin: 'release N'."""
    fd = os.open(path, os.O_RDWR)
    held = 0
    for _ in range(int(count)):
        if read_with_deadline(fd, 1, 20) != TOKEN:
            print("error: read did not return '+'", flush=True)
            return
        held += 1
    print(f"held {held}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["release"]:
            n = int(words[1])
            written = os.write(fd, TOKEN * n)
            held -= written
            print(f"released {written}", flush=True)
    if held:
        os.write(fd, TOKEN * held)


def helper_blocking_read(path: str) -> None:
    """One blocking read; report it; give the token back when stdin closes."""
    fd = os.open(path, os.O_RDWR)
    print("opened", flush=True)
    data = read_with_deadline(fd, 1, 30)
    print(f"got {data.decode(errors='replace')} {time.monotonic():.3f}", flush=True)
    sys.stdin.read()
    os.write(fd, data)


def helper_nonblocking_read(path: str) -> None:
    """One O_NONBLOCK read: prints 'token' (and returns it) or 'EAGAIN'."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        data = os.read(fd, 1)
    except BlockingIOError:
        print("EAGAIN", flush=True)
        return
    print(f"token {data!r}", flush=True)
    if data:
        os.write(fd, data)


def helper_poll_wait(path: str) -> None:
    """poll(0) once, then poll until readable; read the token without blocking."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    events = poller.poll(0)
    print(f"initial {events[0][1] if events else 0}", flush=True)
    events = poller.poll(20000)
    woken = time.monotonic()
    revents = events[0][1] if events else 0
    try:
        data = os.read(fd, 1)
    except BlockingIOError:
        data = b"EAGAIN"
    print(f"woken {revents} {woken:.3f} {data.decode(errors='replace')}", flush=True)
    sys.stdin.read()
    if data == TOKEN:
        os.write(fd, data)


# ---------------------------------------------------------------- scenarios


def scenario_tokens(path: str) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        first = read_with_deadline(fd, 1, 10)
        ok = result("blocking-read-takes-a-token", first == TOKEN, f"read {first!r}")
    except Deadline:
        ok = result("blocking-read-takes-a-token", False, "no token within 10 s")
        first = b""
    try:
        second = read_with_deadline(fd, 8, 10)
        result(
            "read-of-8-bytes-grants-one-token",
            second == TOKEN,
            f"read(fd, 8) returned {second!r}",
        )
    except Deadline:
        second = b""
        result("read-of-8-bytes-grants-one-token", False, "no second token within 10 s")

    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "nonblocking-read", path],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout.strip()
    result(
        "nonblocking-read-gets-EAGAIN-when-both-tokens-are-out",
        out == "EAGAIN",
        f"other process's O_NONBLOCK read: {out or 'no output'}",
    )

    held = (first == TOKEN) + (second == TOKEN)
    try:
        written = os.write(fd, TOKEN * held) if held else 0
        result(
            "write-returns-tokens",
            held == 2 and written == 2,
            f"held {held}, write accepted {written} byte(s)",
        )
    except OSError as error:
        result("write-returns-tokens", False, f"write of {held} byte(s) failed: {error}")
    os.close(fd)


def scenario_poll(path: str) -> None:
    holder = Peer("hold", path, "2")
    poller = None
    try:
        line = holder.expect("held 2", 20)
        if line != "held 2":
            result("poller-woken-by-returned-token", False, f"holder: {line or 'no reply in 20 s'}")
            return
        poller = Peer("poll-wait", path)
        initial = poller.expect("initial", 20)
        result(
            "poll-not-readable-while-pool-empty",
            initial is not None and initial.startswith("initial") and not int(initial.split()[1]) & select.POLLIN,
            f"poll(0) revents: {initial}",
        )
        if not wait_blocked_in(poller.proc.pid, {SYS_POLL, SYS_PPOLL}, 10):
            result("poller-woken-by-returned-token", False, "poller never blocked in poll()")
            return
        released_at = time.monotonic()
        holder.tell("release 1")
        woken = poller.expect("woken", 2)
        if woken is None or not woken.startswith("woken"):
            result(
                "poller-woken-by-returned-token",
                False,
                f"poller not woken within 2 s of the write ({woken or 'no output'})",
            )
            return
        _, revents, at, data = woken.split()
        ok = int(revents) & select.POLLIN and data == "+"
        result(
            "poller-woken-by-returned-token",
            bool(ok),
            f"revents={revents}, read {data!r}, {float(at) - released_at:.3f} s after the write",
        )
    finally:
        if poller:
            poller.finish()
        holder.finish()


def scenario_killed_holder(path: str) -> None:
    name = "sigkilled-holder-token-goes-to-blocked-reader"
    holder = Peer("hold", path, "2")
    reader = None
    try:
        line = holder.expect("held 2", 20)
        if line != "held 2":
            result(name, False, f"holder: {line or 'no reply in 20 s'}")
            return
        reader = Peer("blocking-read", path)
        if reader.expect("opened", 20) != "opened":
            result(name, False, "reader did not open the device")
            return
        if not wait_blocked_in(reader.proc.pid, {SYS_READ}, 10):
            result(name, False, "reader never blocked in read()")
            return
        holder.proc.kill()
        holder.proc.wait()
        killed_at = time.monotonic()
        got = reader.expect("got", 2)
        if got is None or not got.startswith("got"):
            result(name, False, f"blocked reader got nothing within 2 s of SIGKILL ({got or 'no output'})")
            return
        _, data, at = got.split()
        result(name, data == "+", f"reader got {data!r} {float(at) - killed_at:.3f} s after SIGKILL")
    finally:
        if reader:
            reader.finish()
        holder.finish()


def scenario_killed_waiter(path: str) -> None:
    """SIGKILL a reader blocked in read(): the daemon must answer the kernel's
    INTERRUPT, or the process stays in the kernel forever (DESIGN.md)."""
    name = "sigkilled-blocked-reader-exits"
    holder = Peer("hold", path, "2")
    try:
        line = holder.expect("held 2", 20)
        if line != "held 2":
            result(name, False, f"holder: {line or 'no reply in 20 s'}")
            return
        reader = Peer("blocking-read", path)
        if reader.expect("opened", 20) != "opened":
            result(name, False, "reader did not open the device")
            return
        if not wait_blocked_in(reader.proc.pid, {SYS_READ}, 10):
            result(name, False, "reader never blocked in read()")
            return
        reader.proc.kill()
        killed_at = time.monotonic()
        try:
            reader.proc.wait(2)
        except subprocess.TimeoutExpired:
            _, state = syscall_and_state(reader.proc.pid)
            result(name, False, f"still not gone 2 s after SIGKILL (state {state})")
            return
        result(name, True, f"reaped {time.monotonic() - killed_at:.3f} s after SIGKILL")
    finally:
        holder.finish()


def scenario_pool_whole(path: str, jobs: str) -> None:
    """Every token is back: O_NONBLOCK reads get exactly `jobs` tokens, then EAGAIN."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    got = 0
    error = ""
    try:
        for _ in range(int(jobs) + 1):
            data = os.read(fd, 1)
            if data != TOKEN:
                error = f"read {data!r}"
                break
            got += 1
    except BlockingIOError:
        pass
    if got:
        os.write(fd, TOKEN * got)
    result(f"pool-has-all-{jobs}-tokens", got == int(jobs) and not error, f"{got} token(s) available {error}".strip())


def scenario_device(path: str, mode: str) -> None:
    info = os.stat(path)
    result(
        "device-is-a-character-device",
        stat.S_ISCHR(info.st_mode),
        f"st_mode={oct(info.st_mode)}",
    )
    result(
        f"device-mode-is-{mode}",
        stat.S_IMODE(info.st_mode) == int(mode, 8),
        f"mode {oct(stat.S_IMODE(info.st_mode))}",
    )


def scenario_concurrency(log_dir: str, jobs: str, expected: str) -> None:
    """Max overlap of the make jobs' [start, end] intervals."""
    events = []
    missing = []
    for index in range(1, int(jobs) + 1):
        try:
            with open(f"{log_dir}/j{index}.start") as start, open(f"{log_dir}/j{index}.end") as end:
                events.append((float(start.read()), 1))
                events.append((float(end.read()), -1))
        except (OSError, ValueError):
            missing.append(f"j{index}")
    events.sort(key=lambda event: (event[0], event[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    result(
        f"make-runs-exactly-{expected}-jobs-at-a-time",
        not missing and peak == int(expected),
        f"max concurrency {peak}" + (f", missing {' '.join(missing)}" if missing else ""),
    )


COMMANDS = {
    "hold": helper_hold,
    "blocking-read": helper_blocking_read,
    "nonblocking-read": helper_nonblocking_read,
    "poll-wait": helper_poll_wait,
    "tokens": scenario_tokens,
    "poll": scenario_poll,
    "killed-holder": scenario_killed_holder,
    "killed-waiter": scenario_killed_waiter,
    "pool-whole": scenario_pool_whole,
    "device": scenario_device,
    "concurrency": scenario_concurrency,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
