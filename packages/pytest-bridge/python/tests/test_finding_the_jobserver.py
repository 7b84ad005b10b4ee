"""--jobserver, then STEVE_JOBSERVER, then CARGO_MAKEFLAGS/MAKEFLAGS/MFLAGS;
pipe style serves only this process unless the descriptor is a named file."""

import os

import pytest

from steve_jobserver import _check_openable, find_jobserver


def test_option_wins_and_is_made_absolute():
    env = {"STEVE_JOBSERVER": "/dev/steve", "MAKEFLAGS": " --jobserver-auth=fifo:/x"}
    found = find_jobserver("rel/js", env, "/work", distributed=True)
    assert (found.source, found.path) == ("--jobserver", "/work/rel/js")


def test_steve_jobserver_before_makeflags():
    env = {"STEVE_JOBSERVER": "/dev/steve", "MAKEFLAGS": " --jobserver-auth=fifo:/x"}
    found = find_jobserver(None, env, "/", distributed=True)
    assert (found.source, found.path) == ("STEVE_JOBSERVER", "/dev/steve")


@pytest.mark.parametrize(
    "value, path",
    [
        ("fifo:/run/steve/jobserver", "/run/steve/jobserver"),
        ("fifo:rel/js", "/work/rel/js"),
        ("fifo:../js", "/js"),
        ("/dev/steve", "/dev/steve"),
        ("rel/js", "/work/rel/js"),
    ],
)
def test_option_and_steve_jobserver_take_fifo_prefix_or_a_path(value, path):
    # emerge-shim documents STEVE_JOBSERVER as "fifo:PATH or a path".
    assert find_jobserver(value, {}, "/work", True).path == path
    found = find_jobserver(None, {"STEVE_JOBSERVER": value}, "/work", True)
    assert (found.source, found.path, found.problem) == ("STEVE_JOBSERVER", path, None)


def test_empty_fifo_prefix_is_a_problem_not_a_path():
    for option, env in (("fifo:", {}), (None, {"STEVE_JOBSERVER": "fifo:"})):
        found = find_jobserver(option, env, "/work", True)
        assert found.path is None and "the fifo path is empty" in found.problem
    with pytest.raises(pytest.UsageError, match="the fifo path is empty"):
        _check_openable(find_jobserver("fifo:", {}, "/work", True), explicit=True)


def test_steve_jobserver_fifo_prefix_opens_a_real_fifo(tmp_path):
    fifo = tmp_path / "jobserver"
    os.mkfifo(fifo)
    for env in ({"STEVE_JOBSERVER": f"fifo:{fifo}"}, {"STEVE_JOBSERVER": "fifo:jobserver"}):
        found = find_jobserver(None, env, str(tmp_path), True)
        assert _check_openable(found, explicit=False) == (str(fifo), None)
    found = find_jobserver("fifo:jobserver", {}, str(tmp_path), True)
    assert _check_openable(found, explicit=True) == (str(fifo), None)


def test_fifo_auth_from_makeflags_relative_to_cwd():
    found = find_jobserver(None, {"MAKEFLAGS": "k -j4 --jobserver-auth=fifo:js"}, "/b", True)
    assert (found.source, found.path, found.problem) == ("MAKEFLAGS", "/b/js", None)


def test_cargo_makeflags_first():
    env = {"CARGO_MAKEFLAGS": "-j --jobserver-auth=fifo:/c", "MAKEFLAGS": "--jobserver-auth=fifo:/m"}
    assert find_jobserver(None, env, "/", True).path == "/c"


@pytest.mark.parametrize(
    "makeflags, problem",
    [
        ("ks", "MAKEFLAGS has no --jobserver-auth"),
        (" --jobserver-auth=-2,-2", "MAKEFLAGS disables the jobserver (-2,-2)"),
        (" --jobserver-auth=fifo:", "the fifo path is empty"),
        (" --jobserver-auth=999,998", "which are not open here"),
    ],
)
def test_no_usable_jobserver(makeflags, problem):
    found = find_jobserver(None, {"MAKEFLAGS": makeflags}, "/", True)
    assert found.path is None and found.pipe is None
    assert problem in found.problem


def test_nothing_at_all():
    found = find_jobserver(None, {}, "/", False)
    assert found.problem == "no --jobserver, STEVE_JOBSERVER or MAKEFLAGS"


def test_pipe_style_serves_this_process_only():
    read_fd, write_fd = os.pipe()
    try:
        env = {"MAKEFLAGS": f" -j3 --jobserver-auth={read_fd},{write_fd}"}
        assert find_jobserver(None, env, "/", distributed=False).pipe == (read_fd, write_fd)
        found = find_jobserver(None, env, "/", distributed=True)
        assert found.path is None
        assert "pytest-xdist workers cannot inherit" in found.problem
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_pipe_style_on_a_named_file_is_used_by_path(tmp_path):
    # steve's make 4.3 recipe: MAKEFLAGS="--jobserver-auth=3,3" make 3<>/run/steve/jobserver
    fifo = tmp_path / "jobserver"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR)
    try:
        found = find_jobserver(None, {"MAKEFLAGS": f"--jobserver-auth={fd},{fd}"}, "/", True)
        assert found.path == str(fifo)
        assert found.source == f"MAKEFLAGS descriptor {fd}"
    finally:
        os.close(fd)
