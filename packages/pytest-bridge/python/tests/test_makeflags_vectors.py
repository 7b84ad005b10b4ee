"""The Python port reads MAKEFLAGS exactly as @steve/protocol does: both run
packages/protocol/test/vectors/makeflags.json (generated from the TypeScript
parser)."""

import json
import math
import os

import pytest

from steve_jobserver.makeflags import (
    js_number,
    makeflags_from_env,
    parse_jobserver_auth,
    parse_makeflags,
    resolve_posix,
)

VECTORS = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "protocol", "test", "vectors", "makeflags.json"
)
with open(VECTORS, encoding="utf-8") as vectors_file:
    CASES = json.load(vectors_file)["cases"]


def test_the_shared_file_has_the_wire_formats():
    inputs = [case["input"] for case in CASES]
    assert " -j3 --jobserver-auth=3,4" in inputs
    assert " --jobserver-auth=fifo:/dev/steve" in inputs
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[json.dumps(case["input"]) for case in CASES])
def test_vector(case):
    assert parse_makeflags(case["input"], case["cwd"]).as_protocol() == case["expected"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", 0),
        (" 2.5 ", 2.5),
        ("0x10", 16),
        ("0b11", 3),
        ("0o17", 15),
        ("1e3", 1000),
        (".5", 0.5),
        ("5.", 5),
        ("+5", 5),
        ("-Infinity", -math.inf),
    ],
)
def test_js_number(text, expected):
    assert js_number(text) == expected


@pytest.mark.parametrize("text", ["1_0", "inf", "nan", "0x", "-0x10", "1e", "abc", "Infinityx"])
def test_js_number_not_a_number(text):
    assert math.isnan(js_number(text))


def test_resolve_like_node():
    assert resolve_posix("/a/b", "../../../c") == "/c"
    assert resolve_posix("/a", "//x/./y/") == "/x/y"
    assert resolve_posix("/", ".") == "/"


def test_relative_cwd_is_refused():
    with pytest.raises(ValueError):
        parse_makeflags("-j2", "rel")
    with pytest.raises(ValueError):
        parse_jobserver_auth("3,4", "rel")


def test_environment_order_is_cargo_then_make_then_mflags():
    env = {
        "CARGO_MAKEFLAGS": "-j --jobserver-auth=7,8",
        "MAKEFLAGS": " --jobserver-auth=fifo:/dev/steve",
        "MFLAGS": "-j3 --jobserver-auth=3,4",
    }
    found = makeflags_from_env(env, "/")
    assert found is not None and found.variable == "CARGO_MAKEFLAGS"
    assert found.flags.jobserver_auth.read_fd == 7
    del env["CARGO_MAKEFLAGS"]
    assert makeflags_from_env(env, "/").variable == "MAKEFLAGS"
    del env["MAKEFLAGS"]
    assert makeflags_from_env(env, "/tmp").variable == "MFLAGS"
    assert makeflags_from_env({"PATH": "/usr/bin"}, "/") is None
