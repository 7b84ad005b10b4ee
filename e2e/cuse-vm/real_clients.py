#!/usr/bin/python3
"""Real jobserver clients on the CUSE device, in the guest: GNU make 4.4.1
(flat, recursive, Ctrl-C of the build, -jN on the command line and in
MAKEFLAGS), cargo, pytest-xdist with the repo's steve_jobserver plugin and
@steve/jobserver-client as a make recipe.

  real_clients.py SCENARIO DEVICE JOBS DAEMON_LOG WORKDIR [ARGS...]

Each scenario prints one line per check, "PASS name (detail)" or
"FAIL name: what happened" (guest-checks.sh collects them). The observer
independent of the daemon is the jobs' own start/end stamps; the daemon's
own word is its -v log (grants, returns, reclaims). "Every token is back"
is O_NONBLOCK reads getting exactly JOBS tokens, then EAGAIN (the tokens
are written straight back), polled until a deadline.

Every wait is a poll with a deadline; no sleep synchronises anything.
"""

import os
import re
import signal
import subprocess
import sys
import time

TOKEN = b"+"
FORCED_WARNING = re.compile(r"-j4 forced in submake: resetting jobserver mode")


def result(name: str, ok: bool, detail: str = "") -> bool:
    if ok:
        print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)
    else:
        print(f"FAIL {name}: {detail}", flush=True)
    return ok


def poll_until(predicate, seconds: float, interval: float = 0.05):
    """predicate()'s first truthy value within `seconds`, else its last value."""
    end = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() >= end:
            return value
        time.sleep(interval)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else "…" + text[-limit:]


# ------------------------------------------------------------- the pool


def available_tokens(device: str, jobs: int) -> int:
    """How many tokens O_NONBLOCK reads get now (up to jobs + 1); all written back."""
    fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    got = 0
    try:
        for _ in range(jobs + 1):
            try:
                data = os.read(fd, 1)
            except BlockingIOError:
                break
            if data != TOKEN:
                break
            got += 1
    finally:
        if got:
            os.write(fd, TOKEN * got)
        os.close(fd)
    return got


def check_all_tokens_back(name: str, device: str, jobs: int, seconds: float = 10) -> bool:
    started = time.monotonic()
    got = poll_until(lambda: available_tokens(device, jobs) == jobs and jobs, seconds, 0.1)
    last = available_tokens(device, jobs) if not got else jobs
    return result(
        name,
        bool(got),
        f"{jobs} of {jobs} tokens available after {time.monotonic() - started:.2f} s"
        if got
        else f"{last} of {jobs} tokens available {seconds:.0f} s after the build",
    )


class DaemonLog:
    """The daemon's -v records (its stderr, on the results share) since a mark."""

    def __init__(self, path: str):
        self.path = path
        self.offset = self._size()

    def _size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                text = handle.read().decode(errors="replace")
        except OSError:
            return []
        # Records carry an ISO timestamp first. This process's own records
        # (the all-tokens-back probe) are not the client's.
        mine = f" pid {os.getpid()} "
        lines = (re.sub(r"^\S+Z ", "", line) for line in text.splitlines())
        return [line for line in lines if mine not in line]

    def grants(self) -> list[str]:
        return [line for line in self.lines() if line.startswith("grant -> ")]

    def count(self, prefix: str) -> int:
        return sum(1 for line in self.lines() if line.startswith(prefix))

    def reclaimed(self) -> int:
        total = 0
        for line in self.lines():
            match = re.match(r"reclaim <- .*: (\d+) token\(s\)", line)
            if match:
                total += int(match.group(1))
        return total

    def last_out(self) -> int | None:
        outs = [re.search(r"; out (\d+)$", line) for line in self.lines()]
        outs = [int(m.group(1)) for m in outs if m]
        return outs[-1] if outs else None


# ------------------------------------------------------------- stamps


def stamp_lines(path: str) -> list[str]:
    try:
        with open(path) as handle:
            return [line for line in handle.read().splitlines() if line.strip()]
    except OSError:
        return []


def max_concurrency(lines: list[str], prefix: str = "") -> int:
    """The most [start, end] intervals open at once (`start|end NAME NS` lines)."""
    events = []
    for line in lines:
        words = line.split()
        if len(words) != 3 or not words[1].startswith(prefix):
            continue
        if words[0] == "start":
            events.append((int(words[2]), 1))
        elif words[0] == "end":
            events.append((int(words[2]), -1))
    events.sort()
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def running_now(lines: list[str]) -> int:
    started = {w[1] for w in (line.split() for line in lines) if w[0] == "start"}
    ended = {w[1] for w in (line.split() for line in lines) if w[0] == "end"}
    return len(started - ended)


def ends(lines: list[str]) -> int:
    return sum(1 for line in lines if line.startswith("end "))


# ------------------------------------------------------------- make 4.4.1


def stamped_recipe(name: str, seconds: float, stamps: str) -> str:
    return (
        f"\t@echo start {name} $$(/usr/bin/date +%s%N) >> {stamps}; /usr/bin/sleep {seconds}; "
        f"echo end {name} $$(/usr/bin/date +%s%N) >> {stamps}"
    )


def write_flat_makefile(directory: str, jobs: int, seconds: float, stamps: str, prefix: str = "flat") -> None:
    os.makedirs(directory, exist_ok=True)
    names = " ".join(f"job{i}" for i in range(jobs))
    with open(os.path.join(directory, "Makefile"), "w") as handle:
        recipe = stamped_recipe(prefix + "-$@", seconds, stamps)
        handle.write(f"all: {names}\n.PHONY: all {names}\n{names}:\n{recipe}\n")


def write_recursive_makefile(directory: str, subs: int, jobs_each: int, seconds: float, stamps: str) -> None:
    os.makedirs(directory, exist_ok=True)
    names = " ".join(f"sub{i}" for i in range(subs))
    for i in range(subs):
        write_flat_makefile(os.path.join(directory, f"sub{i}"), jobs_each, seconds, stamps, f"sub{i}")
    with open(os.path.join(directory, "Makefile"), "w") as handle:
        handle.write(f"all: {names}\n.PHONY: all {names}\n{names}:\n\t@$(MAKE) --no-print-directory -C $@\n")


def clean_env(**extra: str) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def run_build(args: list[str], cwd: str, env: dict[str, str], seconds: float) -> tuple[int | None, str, float]:
    """Run a build in a session of its own; kill the whole group at the deadline."""
    started = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=seconds)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        code = None
    return code, output.decode(errors="replace"), time.monotonic() - started


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def describe(pids: list[int]) -> str:
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            command = "?"
        out.append(f"{pid} {command}")
    return "; ".join(out)


def built_ok(name: str, code: int | None, output: str, lines: list[str], expected_ends: int, seconds: float) -> bool:
    return result(
        name,
        code == 0 and ends(lines) == expected_ends,
        f"exit 0, {expected_ends} jobs in {seconds:.1f} s"
        if code == 0 and ends(lines) == expected_ends
        else f"exit {code}, {ends(lines)} of {expected_ends} jobs ended: {one_line(output)}",
    )


def pool_concurrency(name: str, lines: list[str], jobs: int, log: DaemonLog) -> bool:
    """Exactly pool + 1 jobs at a time (every token and make's own slot), the
    daemon granted tokens and never had more than the pool out."""
    peak = max_concurrency(lines)
    grants = log.grants()
    outs = [int(m.group(1)) for m in (re.search(r"; out (\d+)$", g) for g in grants) if m]
    ok = peak == jobs + 1 and len(grants) >= jobs and max(outs, default=0) <= jobs
    return result(
        name,
        ok,
        f"max concurrency {peak} (pool {jobs} + 1), {len(grants)} grants, at most {max(outs, default=0)} out",
    )


def scenario_make_flat(device: str, jobs: int, log_path: str, work: str, make: str) -> None:
    directory = os.path.join(work, "flat")
    stamps = os.path.join(work, "flat.stamps")
    write_flat_makefile(directory, 6, 1, stamps)
    log = DaemonLog(log_path)
    code, output, seconds = run_build([make], directory, clean_env(MAKEFLAGS=f"--jobserver-auth=fifo:{device}"), 60)
    lines = stamp_lines(stamps)
    built_ok("make-4.4.1-fifo-flat-build-succeeds", code, output, lines, 6, seconds)
    pool_concurrency(f"make-4.4.1-fifo-flat-runs-{jobs + 1}-jobs-at-a-time", lines, jobs, log)
    check_all_tokens_back("make-4.4.1-fifo-flat-all-tokens-back", device, jobs)


def scenario_make_recursive(device: str, jobs: int, log_path: str, work: str, make: str) -> None:
    directory = os.path.join(work, "recursive")
    stamps = os.path.join(work, "recursive.stamps")
    write_recursive_makefile(directory, 2, 4, 1, stamps)
    log = DaemonLog(log_path)
    code, output, seconds = run_build([make], directory, clean_env(MAKEFLAGS=f"--jobserver-auth=fifo:{device}"), 60)
    lines = stamp_lines(stamps)
    built_ok("make-4.4.1-recursive-build-succeeds", code, output, lines, 8, seconds)
    pool_concurrency(f"make-4.4.1-recursive-runs-{jobs + 1}-jobs-at-a-time", lines, jobs, log)
    check_all_tokens_back("make-4.4.1-recursive-all-tokens-back", device, jobs)


def scenario_make_sigint(device: str, jobs: int, log_path: str, work: str, make: str) -> None:
    """Ctrl-C (SIGINT to the process group) of a recursive build holding the
    whole pool. make 4.4.1 writes no tokens back when it dies of SIGINT: the
    daemon must reclaim them from the dead processes."""
    directory = os.path.join(work, "sigint")
    stamps = os.path.join(work, "sigint.stamps")
    write_recursive_makefile(directory, 2, 4, 60, stamps)
    log = DaemonLog(log_path)
    proc = subprocess.Popen(
        [make],
        cwd=directory,
        env=clean_env(MAKEFLAGS=f"--jobserver-auth=fifo:{device}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pgid = proc.pid
    try:
        full = poll_until(lambda: running_now(stamp_lines(stamps)) == jobs + 1 and log.last_out() == jobs, 30)
        result(
            "make-4.4.1-sigint-build-holds-the-whole-pool",
            bool(full),
            f"{running_now(stamp_lines(stamps))} jobs running, daemon: out {log.last_out()} of {jobs}",
        )
        if not full:
            return
        before = len(log.lines())
        os.killpg(pgid, signal.SIGINT)
        # make 4.4.1 can start a job in the instant the group signal arrives
        # (it blocks fatal signals while it starts a child): that child missed
        # the SIGINT and make waits for it. A user presses Ctrl-C again; so do we.
        gone = lambda: proc.poll() is not None and not group_members(pgid)
        again = 0
        while not poll_until(gone, 5) and again < 3:
            again += 1
            os.killpg(pgid, signal.SIGINT)
        ended = poll_until(gone, 10)
        code = proc.poll()
        result(
            "make-4.4.1-sigint-build-ends",
            bool(ended) and code in (-signal.SIGINT, 2),
            f"make {'died of SIGINT' if code == -signal.SIGINT else f'exit {code}'}"
            + (f", {again} more SIGINT(s) for jobs that missed the first" if again else "")
            + ("" if ended else f"; left: {describe(group_members(pgid))}"),
        )
        back = check_all_tokens_back("make-4.4.1-sigint-all-tokens-reclaimed", device, jobs)
        # The records (stderr) may trail the device a little.
        after = lambda: log.lines()[before:]
        returned = lambda: sum(1 for line in after() if line.startswith("return <- "))
        exited = re.compile(r"reclaim <- .*: (\d+) token\(s\), process exited")
        reclaimed = lambda: sum(int(m.group(1)) for m in (exited.match(line) for line in after()) if m)
        poll_until(lambda: reclaimed() >= max(1, jobs - returned()), 5)
        result(
            "make-4.4.1-sigint-daemon-reclaimed-from-dead-processes",
            back and reclaimed() >= max(1, jobs - returned()) and ends(stamp_lines(stamps)) == 0,
            f"{reclaimed()} token(s) reclaimed from exited processes, {returned()} written back, "
            f"{ends(stamp_lines(stamps))} jobs ran to the end",
        )
    finally:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()


def scenario_make_command_line_j(device: str, jobs: int, log_path: str, work: str, make: str) -> None:
    """-j4 on make's command line: it leaves the pool (runs 4 at once, reads no
    token); the same -j4 inside MAKEFLAGS next to the auth keeps it in."""
    auth = f"--jobserver-auth=fifo:{device}"
    for label, args, makeflags in (("command-line", ["-j4"], auth), ("makeflags", [], f"-j4 {auth}")):
        directory = os.path.join(work, f"j4-{label}")
        stamps = os.path.join(work, f"j4-{label}.stamps")
        write_flat_makefile(directory, 8, 1, stamps)
        log = DaemonLog(log_path)
        code, output, seconds = run_build([make, *args], directory, clean_env(MAKEFLAGS=makeflags), 60)
        lines = stamp_lines(stamps)
        peak = max_concurrency(lines)
        warned = bool(FORCED_WARNING.search(output))
        built = code == 0 and ends(lines) == 8
        grants = len(log.grants())
        if label == "command-line":
            result(
                "make-4.4.1-command-line-j4-leaves-the-pool",
                built and peak == 4 and warned and grants == 0,
                f"exit {code}, {ends(lines)} of 8 jobs, max concurrency {peak} (> pool + 1 = {jobs + 1}), "
                f"{grants} grants, warning {'printed' if warned else 'missing'}"
                + ("" if built else f": {one_line(output)}"),
            )
        else:
            result(
                "make-4.4.1-makeflags-j4-stays-in-the-pool",
                built and peak == jobs + 1 and not warned and grants >= jobs,
                f"exit {code}, {ends(lines)} of 8 jobs, max concurrency {peak}, {grants} grants"
                + (", forced warning printed" if warned else "")
                + ("" if built else f": {one_line(output)}"),
            )
        check_all_tokens_back(f"make-4.4.1-{label}-j4-all-tokens-back", device, jobs)


def scenario_node_recipes(device: str, jobs: int, log_path: str, work: str, make: str, node: str, repo: str) -> None:
    """@steve/jobserver-client's Jobserver.fromEnv() in make 4.4.1 recipes:
    two recipes of 3 tasks each, the first in the slot make gave the recipe,
    the others through acquire/release: at most pool + 1 tasks at once, and
    the library took tokens from the daemon. (Not exactly pool + 1: the two
    node processes start a second or more apart under TCG.)"""
    directory = os.path.join(work, "node-recipes")
    stamps = os.path.join(work, "node-recipes.stamps")
    os.makedirs(directory, exist_ok=True)
    library = f"file://{repo}/packages/jobserver-client/dist/index.js"
    script = os.path.join(directory, "client-recipe.mjs")
    with open(script, "w") as handle:
        handle.write(
            f"""import {{ appendFileSync }} from 'node:fs';
import {{ setTimeout as sleep }} from 'node:timers/promises';
import {{ Jobserver }} from {library!r};
const [name, tasks, ms, stamps] = process.argv.slice(2);
const jobserver = Jobserver.fromEnv();
if (jobserver === null) {{
  console.error('client-recipe: no jobserver in MAKEFLAGS=' + JSON.stringify(process.env.MAKEFLAGS));
  process.exit(3);
}}
const stamp = (kind, task) =>
  appendFileSync(stamps, kind + ' ' + name + '-t' + task + ' ' + process.hrtime.bigint().toString() + '\\n');
await Promise.all(
  Array.from({{ length: Number(tasks) }}, async (_, task) => {{
    const token = await jobserver.acquire();
    try {{
      stamp('start', task);
      await sleep(Number(ms));
      stamp('end', task);
    }} finally {{
      token.release();
    }}
  }}),
);
console.log(name + ': ' + jobserver.auth.kind + ' auth, ' + tasks + ' tasks done');
jobserver.close();
"""
        )
    with open(os.path.join(directory, "Makefile"), "w") as handle:
        handle.write(
            "all: r0 r1\n.PHONY: all r0 r1\nr0 r1:\n"
            f"\t@{node} {script} $@ 3 2000 {stamps}\n"
        )
    log = DaemonLog(log_path)
    code, output, seconds = run_build([make], directory, clean_env(MAKEFLAGS=f"--jobserver-auth=fifo:{device}"), 120)
    lines = stamp_lines(stamps)
    peak = max_concurrency(lines)
    said = output.count(": fifo auth, 3 tasks done")
    result(
        "make-4.4.1-jobserver-client-recipes-succeed",
        code == 0 and ends(lines) == 6 and said == 2,
        f"exit {code}, {ends(lines)} of 6 tasks, {said} of 2 recipes on fifo auth in {seconds:.1f} s"
        + ("" if code == 0 else f": {one_line(output)}"),
    )
    grants = len(log.grants())
    result(
        f"make-4.4.1-jobserver-client-recipes-within-{jobs + 1}-at-a-time",
        2 <= peak <= jobs + 1 and grants >= 1,
        f"max concurrency {peak} of the 6 tasks, {grants} grants",
    )
    check_all_tokens_back("make-4.4.1-jobserver-client-recipes-all-tokens-back", device, jobs)


# ------------------------------------------------------------- cargo


def write_cargo_workspace(root: str, crates: int, seconds: float) -> None:
    """Local crates, no dependencies; each build script stamps start/end and sleeps."""
    members = [f"crate{i}" for i in range(crates)]
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "Cargo.toml"), "w") as handle:
        quoted = ", ".join(f'"{m}"' for m in members)
        handle.write(f'[workspace]\nmembers = [{quoted}]\nresolver = "2"\n')
    for name in members:
        os.makedirs(os.path.join(root, name, "src"), exist_ok=True)
        with open(os.path.join(root, name, "Cargo.toml"), "w") as handle:
            handle.write(f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\nbuild = "build.rs"\n')
        with open(os.path.join(root, name, "src", "lib.rs"), "w") as handle:
            handle.write(f"pub fn {name}() -> u32 {{ 1 }}\n")
        with open(os.path.join(root, name, "build.rs"), "w") as handle:
            handle.write(
                """use std::io::Write;
fn stamp(kind: &str) {
    let path = std::env::var("STAMPS").expect("STAMPS");
    let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    // One write(2) for the whole line: other jobs append to the same file.
    f.write_all(format!("{} cargo-{} {}\\n", kind, env!("CARGO_PKG_NAME"), ns).as_bytes()).unwrap();
}
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    stamp("start");
    std::thread::sleep(std::time::Duration::from_millis(%d));
    stamp("end");
}
"""
                % round(seconds * 1000)
            )


def scenario_cargo(device: str, jobs: int, log_path: str, work: str, cargo: str, rustc: str) -> None:
    if not (os.access(cargo, os.X_OK) and os.access(rustc, os.X_OK)):
        result("cargo-build-through-the-device-succeeds", False, f"no cargo/rustc at {cargo!r} {rustc!r}")
        return
    crates = 4
    root = os.path.join(work, "ws")
    stamps = os.path.join(work, "cargo.stamps")
    write_cargo_workspace(root, crates, 1)
    log = DaemonLog(log_path)
    env = clean_env(
        MAKEFLAGS=f"--jobserver-auth=fifo:{device}",
        CARGO_HOME=os.path.join(work, "cargo-home"),
        CARGO_TARGET_DIR=os.path.join(work, "target"),
        RUSTC=rustc,
        STAMPS=stamps,
    )
    code, output, seconds = run_build([cargo, "build", "--offline"], root, env, 300)
    lines = stamp_lines(stamps)
    result(
        "cargo-build-through-the-device-succeeds",
        code == 0 and ends(lines) == crates,
        f"exit 0, {crates} crates with build scripts in {seconds:.1f} s"
        if code == 0 and ends(lines) == crates
        else f"exit {code}, {ends(lines)} of {crates} build scripts ended: {one_line(output)}",
    )
    grants = log.grants()
    commands = sorted({m.group(1) for m in (re.match(r"grant -> pid \d+ \((\S+?)[ )]", g) for g in grants) if m})
    names = sorted({os.path.basename(c) for c in commands})
    peak = max_concurrency(lines)
    # rustc's jobserver-rs checks what it inherits: with pipe-style auth on a
    # file that is not a pipe it warns "failed to connect to jobserver" and
    # runs on its own (the reason this uses fifo:).
    warning = next((line for line in output.splitlines() if "failed to connect to jobserver" in line), "")
    version = subprocess.run([cargo, "--version"], capture_output=True, text=True).stdout.strip()
    result(
        "cargo-takes-tokens-from-the-device",
        "cargo" in names and peak <= jobs + 1 and not warning,
        f"{len(grants)} grants to {', '.join(names) or 'nobody'}; build scripts at most {peak} at once "
        f"(pool {jobs} + 1)"
        + (f"; {one_line(warning, 200)}" if warning else "")
        + ("" if grants else f"; {version} (a cargo without fifo: support ignores it)"),
    )
    check_all_tokens_back("cargo-all-tokens-back", device, jobs)


# ------------------------------------------------------------- pytest-xdist


def scenario_pytest_xdist(device: str, jobs: int, log_path: str, work: str, plugin_dir: str) -> None:
    """pytest -n 4 -p steve_jobserver: each worker holds a slot while it runs
    a test, one implicit slot for the whole run, so at most pool + 1 at once."""
    tests = 12
    suite = os.path.join(work, "pytest-suite")
    stamps = os.path.join(work, "pytest.stamps")
    os.makedirs(suite, exist_ok=True)
    with open(os.path.join(suite, "test_sleep.py"), "w") as handle:
        handle.write(
            f"""import time
import pytest

def stamp(kind, name):
    with open({stamps!r}, "a") as f:
        f.write(f"{{kind}} {{name}} {{time.time_ns()}}\\n")

@pytest.mark.parametrize("n", range({tests}))
def test_sleep(n):
    stamp("start", f"pytest-{{n}}")
    time.sleep(1)
    stamp("end", f"pytest-{{n}}")
"""
        )
    log = DaemonLog(log_path)
    env = clean_env(MAKEFLAGS=f" --jobserver-auth=fifo:{device}", PYTHONPATH=plugin_dir)
    args = ["/usr/bin/python3", "-m", "pytest", "-p", "no:cacheprovider", "-p", "xdist", "-p", "steve_jobserver"]
    code, output, seconds = run_build([*args, "-n", "4", "-q"], suite, env, 240)
    lines = stamp_lines(stamps)
    summary = next((line for line in output.splitlines() if line.startswith("steve-jobserver:")), "")
    ok = code == 0 and f"{tests} passed" in output and ends(lines) == tests
    result(
        "pytest-xdist-suite-passes-with-the-plugin",
        ok and f"the pool at {device} (from MAKEFLAGS)" in summary,
        f"{tests} passed in {seconds:.1f} s; {summary}" if ok else f"exit {code}: {one_line(output)}",
    )
    peak = max_concurrency(lines)
    grants = log.grants()
    outs = [int(m.group(1)) for m in (re.search(r"; out (\d+)$", g) for g in grants) if m]
    result(
        f"pytest-xdist-at-most-{jobs + 1}-tests-at-once",
        2 <= peak <= jobs + 1 and len(grants) >= 1 and max(outs, default=0) <= jobs,
        f"max concurrency {peak} with 4 workers (pool {jobs} + the shared implicit slot), "
        f"{len(grants)} grants, at most {max(outs, default=0)} out",
    )
    check_all_tokens_back("pytest-xdist-all-tokens-back", device, jobs)


SCENARIOS = {
    "make-flat": scenario_make_flat,
    "make-recursive": scenario_make_recursive,
    "make-sigint": scenario_make_sigint,
    "make-command-line-j": scenario_make_command_line_j,
    "node-recipes": scenario_node_recipes,
    "cargo": scenario_cargo,
    "pytest-xdist": scenario_pytest_xdist,
}

if __name__ == "__main__":
    name, device, jobs, log_path, work, *rest = sys.argv[1:]
    os.makedirs(work, exist_ok=True)
    SCENARIOS[name](device, int(jobs), log_path, work, *rest)
