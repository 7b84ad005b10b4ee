#!/usr/bin/python3
"""One-token jobserver semantics, checked on each server `pnpm bench cuse` compares.

    bench_semantics.py DEVICE LABEL   (the server holds exactly one token)

guest-bench.sh runs it on the fair C CUSE server and on `steve-daemon -j1
--cuse` before any round, so the two are known to serve the same protocol:
a blocking read takes the token; an O_NONBLOCK read from another process
gets EAGAIN while it is out; a blocked reader is kept and answered by the
write that returns the token; a SIGKILLed blocked reader exits (the
interrupt is answered); poll is not readable while the token is out and
wakes when it comes back; at the end the token is back. One line per check,
"PASS LABEL-name (detail)" or "FAIL LABEL-name: detail" (clients.py's
helpers are the peer processes).
"""

import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clients  # noqa: E402
from clients import SYS_POLL, SYS_PPOLL, SYS_READ, Peer, wait_blocked_in  # noqa: E402


def nonblocking_read(path: str) -> str:
    return subprocess.run(
        [sys.executable, clients.__file__, "nonblocking-read", path],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout.strip()


def main(path: str, label: str) -> None:
    def result(name: str, ok: bool, detail: str = "") -> bool:
        return clients.result(f"{label}-{name}", ok, detail)

    def blocked_reader() -> Peer | None:
        reader = Peer("blocking-read", path)
        if reader.expect("opened", 20) == "opened" and wait_blocked_in(reader.proc.pid, {SYS_READ}, 10):
            return reader
        reader.proc.kill()
        reader.finish()
        return None

    holder = Peer("hold", path, "1")
    try:
        line = holder.expect("held 1", 20)
        if not result("blocking-read-takes-the-token", line == "held 1", line or "no reply in 20 s"):
            return
        out = nonblocking_read(path)
        result("nonblocking-read-gets-EAGAIN-while-the-token-is-out", out == "EAGAIN", out or "no output")

        victim = blocked_reader()
        blocks = victim is not None
        detail = "blocked in read()" if blocks else "never blocked in read() (answered at once?)"
        if result("read-blocks-while-the-token-is-out", blocks, detail):
            victim.proc.kill()
            killed = time.monotonic()
            try:
                victim.proc.wait(2)
                result("sigkilled-blocked-reader-exits", True, f"{time.monotonic() - killed:.3f} s")
            except subprocess.TimeoutExpired:
                result("sigkilled-blocked-reader-exits", False, "still there 2 s after SIGKILL")
            victim.finish()

        reader = blocked_reader()
        if reader is None:
            result("write-answers-the-blocked-reader", False, "reader never blocked in read()")
            return
        released = time.monotonic()
        holder.tell("release 1")
        got = reader.expect("got", 2)
        result(
            "write-answers-the-blocked-reader",
            got is not None and got.startswith("got +"),
            f"{got or 'nothing within 2 s'}, {time.monotonic() - released:.3f} s after the write",
        )
        reader.finish()  # writes its token back
    finally:
        holder.finish()

    holder = Peer("hold", path, "1")
    poller = None
    try:
        line = holder.expect("held 1", 20)
        if line != "held 1":
            result("poller-woken-by-the-returned-token", False, f"holder: {line or 'no reply in 20 s'}")
            return
        poller = Peer("poll-wait", path)
        initial = poller.expect("initial", 20) or ""
        result(
            "poll-not-readable-while-the-token-is-out",
            initial.startswith("initial") and not int(initial.split()[1]) & select.POLLIN,
            f"poll(0) revents: {initial or 'no output'}",
        )
        if not wait_blocked_in(poller.proc.pid, {SYS_POLL, SYS_PPOLL}, 10):
            result("poller-woken-by-the-returned-token", False, "poller never blocked in poll()")
            return
        holder.tell("release 1")
        woken = poller.expect("woken", 2) or ""
        result(
            "poller-woken-by-the-returned-token",
            woken.startswith("woken") and woken.endswith(" +"),
            woken or "not woken within 2 s",
        )
    finally:
        if poller:
            poller.finish()
        holder.finish()

    out = ""
    for _ in range(100):  # the last peer's token may still be on its way back
        out = nonblocking_read(path)
        if out.startswith("token"):
            break
        time.sleep(0.05)
    result("the-token-is-back", out == "token b'+'", out or "no output")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
