"""steve_jobserver: pytest-xdist workers take their job slots from the GNU
make jobserver (the system-wide steve pool, or any make jobserver).

Load it with ``-p steve_jobserver`` (Gentoo: ``EPYTEST_FLAGS="-p
steve_jobserver"``), or install it (it registers a ``pytest11`` entry point).

- The jobserver comes from ``--jobserver PATH``, ``STEVE_JOBSERVER`` (either
  may also be written ``fifo:PATH``), then the first of CARGO_MAKEFLAGS,
  MAKEFLAGS, MFLAGS that is set (parsed exactly as ``@steve/protocol`` does,
  see makeflags.py).
- Every xdist worker holds a slot while it collects and while it runs each
  test. The run has ONE implicit slot, shared by all workers (an flock on a
  lock file the controller creates and passes through ``workerinput``);
  every other slot is a token. So a run never exceeds pool + 1.
- Without xdist the single pytest process is the client's implicit slot and
  takes nothing.
- ``-n auto`` starts as many workers as the steve pool has tokens, when the
  control socket (``STEVE_CONTROL`` or /run/steve/control.sock) serves the
  same jobserver.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import pytest

from . import control
from .makeflags import makeflags_from_env, parse_jobserver_auth
from .tokens import ImplicitSlot, Jobserver, Slots

__all__ = ["Found", "find_jobserver"]

#: The key in xdist's workerinput / workeroutput dictionaries.
WORKER_KEY = "steve_jobserver"
#: A jobserver path for the whole run (beside --jobserver).
JOBSERVER_ENV = "STEVE_JOBSERVER"
SUMMARY_PREFIX = "steve-jobserver:"


@dataclass(frozen=True)
class Found:
    """Where this run's job slots come from.

    ``path``: a jobserver a worker can open itself (fifo style). ``pipe``:
    inherited descriptors (pipe style), usable only by this process.
    ``problem``: why there is no usable jobserver (then both are None)."""

    source: str
    path: Optional[str] = None
    pipe: Optional[Tuple[int, int]] = None
    problem: Optional[str] = None

    def describe(self) -> str:
        if self.path is not None:
            return f"{self.path} (from {self.source})"
        if self.pipe is not None:
            return f"descriptors {self.pipe[0]},{self.pipe[1]} (from {self.source})"
        return f"no jobserver: {self.problem}"


def _fd_is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
        return True
    except OSError:
        return False


def _named_jobserver(source: str, value: str, cwd: str) -> Found:
    """``--jobserver`` / ``STEVE_JOBSERVER``: ``fifo:PATH`` (as in
    ``--jobserver-auth``, a relative PATH resolved against ``cwd`` as
    @steve/protocol does) or a plain path."""
    if value.startswith("fifo:"):
        auth = parse_jobserver_auth(value, cwd)
        if auth.kind != "fifo":
            return Found(source, problem=f"{source}={value}: {auth.reason}")
        return Found(source, path=auth.path)
    return Found(source, path=os.path.join(cwd, value))


def find_jobserver(
    option: Optional[str], env: Mapping[str, str], cwd: str, distributed: bool
) -> Found:
    """Find the jobserver: ``--jobserver``, ``STEVE_JOBSERVER``, then
    CARGO_MAKEFLAGS / MAKEFLAGS / MFLAGS.

    Pipe-style auth (``--jobserver-auth=R,W``) serves this process only:
    pytest-xdist starts its workers without our descriptors. With workers,
    a descriptor that is a named file (steve's ``3<>/run/steve/jobserver``)
    is used by its path; an anonymous pipe (make's own) is not usable.
    """
    if option:
        return _named_jobserver("--jobserver", option, cwd)
    if env.get(JOBSERVER_ENV):
        return _named_jobserver(JOBSERVER_ENV, env[JOBSERVER_ENV], cwd)
    found = makeflags_from_env(env, cwd)
    if found is None:
        return Found("environment", problem="no --jobserver, STEVE_JOBSERVER or MAKEFLAGS")
    source = found.variable
    auth = found.flags.jobserver_auth
    if auth is None:
        return Found(source, problem=f"{source} has no --jobserver-auth")
    if auth.kind == "fifo":
        return Found(source, path=auth.path)
    if auth.kind == "disabled":
        return Found(source, problem=f"{source} disables the jobserver ({auth.raw})")
    if auth.kind == "unsupported":
        return Found(source, problem=f"{source}: --jobserver-auth={auth.raw}: {auth.reason}")
    read_fd, write_fd = auth.read_fd or 0, auth.write_fd or 0
    if not (_fd_is_open(read_fd) and _fd_is_open(write_fd)):
        return Found(
            source,
            problem=f"{source} names descriptors {read_fd},{write_fd}, which are not open here"
            " (make passes them only to recipes marked '+' or using $(MAKE))",
        )
    if not distributed:
        return Found(source, pipe=(read_fd, write_fd))
    try:
        target = os.readlink(f"/proc/self/fd/{read_fd}")
    except OSError:
        target = ""
    if target.startswith("/") and os.path.exists(target):
        return Found(f"{source} descriptor {read_fd}", path=target)
    return Found(
        source,
        problem=f"pytest-xdist workers cannot inherit the jobserver descriptors"
        f" {read_fd},{write_fd} from {source} ({target or 'not a named file'}); give the pool"
        " by path: --jobserver PATH, STEVE_JOBSERVER or --jobserver-auth=fifo:PATH",
    )


def _is_distributed(config: pytest.Config) -> bool:
    """True in the pytest-xdist controller of a run with workers."""
    if hasattr(config, "workerinput"):
        return False
    return config.getoption("dist", "no") != "no" and not config.getoption("collectonly")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("steve-jobserver", "job slots from the GNU make jobserver (steve)")
    group.addoption(
        "--jobserver",
        metavar="PATH",
        default=None,
        help="jobserver to take pytest-xdist workers' slots from (a fifo, /dev/steve or"
        " /run/steve/jobserver), written PATH or fifo:PATH; default: $STEVE_JOBSERVER, then"
        " the --jobserver-auth in CARGO_MAKEFLAGS, MAKEFLAGS or MFLAGS",
    )


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> Optional[int]:
    """``-n auto``: as many workers as the steve pool has tokens."""
    found = find_jobserver(config.getoption("jobserver"), os.environ, os.getcwd(), True)
    if found.path is None:
        return None
    return control.pool_size(control.control_socket_path(os.environ), found.path)


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        settings = workerinput.get(WORKER_KEY)
        if settings is not None:
            config.pluginmanager.register(Worker(config, settings), "steve_jobserver_worker")
        return
    distributed = _is_distributed(config)
    found = find_jobserver(config.getoption("jobserver"), os.environ, os.getcwd(), distributed)
    if distributed:
        plugin: object = Controller(config, found)
    else:
        plugin = Solo(found)
    config.pluginmanager.register(plugin, "steve_jobserver_run")


def _check_openable(found: Found, explicit: bool) -> Tuple[Optional[str], Optional[str]]:
    """(path, problem): the path when it opens, else why not."""
    if found.path is None:
        if explicit and found.problem is not None:  # e.g. --jobserver fifo:
            raise pytest.UsageError(found.problem)
        return None, found.problem
    try:
        mode = os.stat(found.path).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(f"{found.path} is a directory")
        Jobserver(found.path).close()
        return found.path, None
    except OSError as error:
        problem = f"cannot open the jobserver {found.path} (from {found.source}): {error}"
        if explicit:
            raise pytest.UsageError(problem) from error
        return None, problem


@dataclass
class _Totals:
    acquired: int = 0
    implicit: int = 0
    waits: int = 0
    total_wait_s: float = 0.0
    longest_wait_s: float = 0.0
    reports: int = 0

    def add(self, stats: Dict[str, float]) -> None:
        self.reports += 1
        self.acquired += int(stats.get("acquired", 0))
        self.implicit += int(stats.get("implicit", 0))
        self.waits += int(stats.get("waits", 0))
        self.total_wait_s += float(stats.get("total_wait_s", 0.0))
        self.longest_wait_s = max(self.longest_wait_s, float(stats.get("longest_wait_s", 0.0)))


class Controller:
    """The pytest-xdist controller: runs no tests, holds nothing; creates the
    run's implicit-slot lock file and tells the workers where the pool is."""

    def __init__(self, config: pytest.Config, found: Found) -> None:
        self.found = found
        self.path, self.problem = _check_openable(found, explicit=found.source == "--jobserver")
        # A named jobserver that cannot be opened: like make's "-j1"
        # fallback, the workers then share the implicit slot only.
        self.serial = found.path is not None and self.path is None
        self.run_dir = tempfile.mkdtemp(prefix="steve-jobserver-")
        self.lock_path = os.path.join(self.run_dir, "implicit-slot.lock")
        with open(self.lock_path, "w", encoding="ascii"):
            pass
        self.tests = 0
        self.workers: set = set()
        self.lost_workers = 0
        self.totals = _Totals()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:  # type: ignore[no-untyped-def]
        if self.path is None and not self.serial:
            return  # no jobserver: workers run as pytest-xdist starts them
        node.workerinput[WORKER_KEY] = {"path": self.path, "lock": self.lock_path}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:  # type: ignore[no-untyped-def]
        self.workers.add(node.gateway.id)
        stats = getattr(node, "workeroutput", {}).get(WORKER_KEY) if error is None else None
        if stats is None:
            self.lost_workers += 1
        else:
            self.totals.add(stats)

    def pytest_runtest_logfinish(self, nodeid: str, location: object) -> None:
        self.tests += 1

    def pytest_report_header(self, config: pytest.Config) -> str:
        if self.path is not None:
            return f"{SUMMARY_PREFIX} job slots from {self.found.describe()}"
        return f"{SUMMARY_PREFIX} {self.problem}"

    def pytest_terminal_summary(self, terminalreporter) -> None:  # type: ignore[no-untyped-def]
        workers = len(self.workers)
        head = f"{SUMMARY_PREFIX} {self.tests} tests run by {workers} workers"
        if self.path is None and not self.serial:
            terminalreporter.write_line(f"{head} without a jobserver ({self.problem})")
            return
        where = f"the pool at {self.found.describe()}" if self.path else "the implicit slot only"
        totals = self.totals
        line = (
            f"{head} with {where}; waited for tokens {totals.total_wait_s:.2f} s in total,"
            f" longest {totals.longest_wait_s:.2f} s; {totals.implicit} of {totals.acquired}"
            " slots were the shared implicit slot"
        )
        if self.lost_workers:
            line += f"; {self.lost_workers} workers ended without a report"
        if self.serial:
            line += f" ({self.problem})"
        terminalreporter.write_line(line)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)


class Worker:
    """A pytest-xdist worker: one slot while collecting, one per test."""

    def __init__(self, config: pytest.Config, settings: Dict[str, Optional[str]]) -> None:
        self.config = config
        path = settings.get("path")
        lock = settings.get("lock")
        self.slots = Slots(
            Jobserver(path) if path else None,
            ImplicitSlot(lock) if lock else None,
        )
        # Tokens go back however the worker ends (steve would reclaim them
        # at exit anyway; a plain make fifo would not).
        atexit.register(self.slots.release_all)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_collection(self, session: pytest.Session):  # type: ignore[no-untyped-def]
        token = self.slots.acquire()
        try:
            yield
        finally:
            self.slots.release(token)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Optional[pytest.Item]):  # type: ignore[no-untyped-def]
        token = self.slots.acquire()
        try:
            yield
        finally:
            self.slots.release(token)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_KEY] = self.slots.stats.as_dict()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.slots.close()


class Solo:
    """No pytest-xdist workers: this process is the client's implicit slot
    and takes no token (a jobserver client never reads for its first job)."""

    def __init__(self, found: Found) -> None:
        self.found = found
        self.tests = 0

    def pytest_runtest_logfinish(self, nodeid: str, location: object) -> None:
        self.tests += 1

    def pytest_terminal_summary(self, terminalreporter) -> None:  # type: ignore[no-untyped-def]
        where = (
            f"the pool at {self.found.describe()}"
            if self.found.problem is None
            else self.found.describe()
        )
        terminalreporter.write_line(
            f"{SUMMARY_PREFIX} {self.tests} tests run in one process on its implicit slot,"
            f" no tokens taken ({where})"
        )
