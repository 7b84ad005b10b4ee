"""MAKEFLAGS, read exactly as ``@steve/protocol``'s ``parseMakeflags`` reads it.

This is a port, not a second opinion: the rules (and their reasons) live in
``packages/protocol/src/makeflags.ts`` and ``auth.ts``, and both test suites
read the same cases from ``packages/protocol/test/vectors/makeflags.json``.
When the TypeScript parser changes, regenerate the vectors
(``node packages/pytest-bridge/scripts/generate-makeflags-vectors.mjs``) and
this file must follow.

Two JavaScript details are reproduced on purpose so the results are equal
for every input, not just the usual ones:

- strings are indexed by UTF-16 code units (a character outside the BMP is
  two "letters" to the TypeScript parser), so the value is converted to
  surrogate pairs first and back at the end;
- numbers are read with JavaScript's ``Number()`` (``0x10`` is 16, ``1_0``
  is not a number), and ``\\s`` means JavaScript's whitespace set.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple, Union

# The environment variables a client looks in, in this order (as jobserver-rs
# and @steve/protocol's MAKEFLAGS_ENV_VARS): cargo's own copy first.
MAKEFLAGS_ENV_VARS = ("CARGO_MAKEFLAGS", "MAKEFLAGS", "MFLAGS")

# JavaScript's \s (ECMAScript WhiteSpace + LineTerminator).
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_SPACE_RE = re.compile("[" + _JS_SPACE + "]")
_BLANK = " \t"
_VARIABLE_DEFINITION = re.compile(
    "[^" + _JS_SPACE + "=:+?!]+[ \t]*(?:=|:=|::=|:::=|\\+=|\\?=|!=)"
)
_DIGITS = re.compile(r"[0-9]+")
_FLAG_LETTER = re.compile(r"[A-Za-z0-9]")
_FLOAT_START = re.compile(r"[0-9.]")
_PIPE_AUTH = re.compile(r"(-?[0-9]+),(-?[0-9]+)")
_JS_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_JS_PREFIXED = {"0x": (16, "0123456789abcdefABCDEF"), "0o": (8, "01234567"), "0b": (2, "01")}
_MAX_SAFE_INTEGER = 2**53 - 1

_SHORT_WITH_ARGUMENT = frozenset("CEfIoW")
_LONG_WITH_ARGUMENT = frozenset(
    [
        "directory",
        "eval",
        "file",
        "makefile",
        "include-dir",
        "old-file",
        "assume-old",
        "what-if",
        "new-file",
        "assume-new",
        "jobserver-style",
        "sync-mutex",
    ]
)
_LONG_LETTER_ALIASES = {
    "always-make": "B",
    "environment-overrides": "e",
    "help": "h",
    "ignore-errors": "i",
    "keep-going": "k",
    "check-symlink-times": "L",
    "just-print": "n",
    "dry-run": "n",
    "recon": "n",
    "print-data-base": "p",
    "question": "q",
    "no-builtin-rules": "r",
    "no-builtin-variables": "R",
    "silent": "s",
    "quiet": "s",
    "no-keep-going": "S",
    "stop": "S",
    "touch": "t",
    "version": "v",
    "print-directory": "w",
}

Number = Union[int, float]


@dataclass(frozen=True)
class JobserverAuth:
    """The ``--jobserver-auth=`` value: ``fifo`` (a path), ``pipe`` (two
    inherited descriptors), ``disabled`` (negative descriptors, make's
    ``-2,-2``) or ``unsupported`` (with the reason)."""

    kind: str
    path: Optional[str] = None
    read_fd: Optional[int] = None
    write_fd: Optional[int] = None
    raw: Optional[str] = None
    reason: Optional[str] = None

    def as_protocol(self) -> Dict[str, object]:
        """The same object @steve/protocol returns (camelCase keys)."""
        if self.kind == "fifo":
            return {"kind": "fifo", "path": self.path}
        if self.kind == "pipe":
            return {"kind": "pipe", "readFd": self.read_fd, "writeFd": self.write_fd}
        if self.kind == "disabled":
            return {"kind": "disabled", "raw": self.raw}
        return {"kind": "unsupported", "raw": self.raw, "reason": self.reason}


@dataclass(frozen=True)
class MakeFlags:
    """What ``parseMakeflags`` returns; see makeflags.ts for each field."""

    letters: Tuple[str, ...] = ()
    jobs: Union[Number, str, None] = None  # N, 'unlimited' or None
    load_average: Union[Number, str, None] = None  # L, 'none' or None
    jobserver_auth: Optional[JobserverAuth] = None
    other_options: Tuple[Tuple[str, ...], ...] = ()
    variables: Tuple[str, ...] = ()
    warnings: Tuple[str, ...] = field(default=())

    def as_protocol(self) -> Dict[str, object]:
        """The same object @steve/protocol returns (camelCase keys, lists)."""
        return {
            "letters": list(self.letters),
            "jobs": self.jobs,
            "loadAverage": self.load_average,
            "jobserverAuth": None if self.jobserver_auth is None else self.jobserver_auth.as_protocol(),
            "otherOptions": [list(option) for option in self.other_options],
            "variables": list(self.variables),
            "warnings": list(self.warnings),
        }


def _to_code_units(text: str) -> str:
    """Characters outside the BMP as surrogate pairs: JavaScript's indexing."""
    if all(ord(ch) < 0x10000 for ch in text):
        return text
    return "".join(
        chr(unit)
        for unit in (
            int.from_bytes(pair, "little")
            for pair in _pairs(text.encode("utf-16-le", "surrogatepass"))
        )
    )


def _pairs(data: bytes):
    for i in range(0, len(data), 2):
        yield data[i : i + 2]


def _from_code_units(text: str) -> str:
    """Back from surrogate pairs (lone surrogates stay as they are)."""
    if all(not 0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def js_number(text: str) -> float:
    """JavaScript's ``Number(text)`` for a string (NaN when it is not a number)."""
    trimmed = _strip_js_space(text)
    if trimmed == "":
        return 0.0
    prefixed = _JS_PREFIXED.get(trimmed[:2].lower())
    if prefixed is not None:
        base, digits = prefixed
        body = trimmed[2:]
        if body and all(ch in digits for ch in body):
            return float(int(body, base))
        return math.nan
    if _JS_DECIMAL.fullmatch(trimmed) is None:
        return math.nan
    return float(trimmed.replace("Infinity", "inf"))


def _strip_js_space(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _JS_SPACE_RE.match(text[start]):
        start += 1
    while end > start and _JS_SPACE_RE.match(text[end - 1]):
        end -= 1
    return text[start:end]


def _as_json_number(value: float) -> Number:
    """An integral double as an int, as JSON.stringify would write it."""
    if math.isfinite(value) and value == int(value):
        return int(value)
    return value


def resolve_posix(cwd: str, path: str) -> str:
    """Node's ``path.posix.resolve(cwd, path)`` for an absolute ``cwd``."""
    joined = path if path.startswith("/") else cwd + "/" + path
    parts: List[str] = []
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def is_variable_definition(word: str) -> bool:
    """True for a word make reads as a command-line variable definition."""
    return _VARIABLE_DEFINITION.match(word) is not None


def split_makeflags_words(value: str) -> List[str]:
    """Split a MAKEFLAGS value into words the way make does (after ``$$`` -> ``$``)."""
    expanded = value.replace("$$", "$")
    words: List[str] = []
    i = 0
    while i < len(expanded) and _JS_SPACE_RE.match(expanded[i]):
        i += 1
    word = ""
    while i < len(expanded):
        ch = expanded[i]
        if ch == "\\" and i + 1 < len(expanded):
            word += expanded[i + 1]
            i += 2
            continue
        if ch in _BLANK:
            words.append(word)
            word = ""
            while i < len(expanded) and expanded[i] in _BLANK:
                i += 1
            continue
        word += ch
        i += 1
    words.append(word)
    return [w for w in words if w != ""]


def parse_jobserver_auth(raw: str, cwd: str) -> JobserverAuth:
    """One ``--jobserver-auth=`` (or ``--jobserver-fds=``) value; see auth.ts."""
    if not cwd.startswith("/"):
        raise ValueError(f"cwd must be an absolute path, got '{cwd}'")
    if raw.startswith("fifo:"):
        path = raw[len("fifo:") :]
        if path == "":
            return JobserverAuth("unsupported", raw=raw, reason="the fifo path is empty")
        return JobserverAuth("fifo", path=resolve_posix(cwd, path))
    pipe = _PIPE_AUTH.fullmatch(raw)
    if pipe:
        read_fd = js_number(pipe.group(1))
        write_fd = js_number(pipe.group(2))
        if read_fd < 0 or write_fd < 0:
            return JobserverAuth("disabled", raw=raw)
        if read_fd > _MAX_SAFE_INTEGER or write_fd > _MAX_SAFE_INTEGER:
            return JobserverAuth("unsupported", raw=raw, reason="descriptor number out of range")
        return JobserverAuth("pipe", read_fd=int(read_fd), write_fd=int(write_fd))
    if raw == "":
        return JobserverAuth("unsupported", raw=raw, reason="the value is empty")
    if raw.startswith("gmake_semaphore_"):
        return JobserverAuth(
            "unsupported", raw=raw, reason="a Windows semaphore (GNU make on Windows)"
        )
    return JobserverAuth(
        "unsupported", raw=raw, reason="expected 'fifo:PATH' or 'R,W' (two descriptor numbers)"
    )


def parse_makeflags(value: str, cwd: str) -> MakeFlags:
    """Parse a MAKEFLAGS (or MFLAGS, CARGO_MAKEFLAGS) value.

    ``cwd`` is the absolute directory a relative ``fifo:`` path is resolved
    against. Never raises for any value (bad parts land in ``warnings`` or as
    an ``unsupported`` auth); raises ValueError when ``cwd`` is relative.

    >>> flags = parse_makeflags('ks -j3 --jobserver-auth=3,4 -- FOO=bar', '/src')
    >>> flags.letters, flags.jobs, flags.jobserver_auth.read_fd, flags.variables
    (('k', 's'), 3, 3, ('FOO=bar',))
    """
    if not cwd.startswith("/"):
        raise ValueError(f"cwd must be an absolute path, got '{cwd}'")
    words = split_makeflags_words(_to_code_units(value))
    if words and not words[0].startswith("-") and "=" not in words[0]:
        words[0] = "-" + words[0]

    letters: List[str] = []
    state: Dict[str, object] = {"jobs": None, "load": None, "auth": None}
    other_options: List[Tuple[str, ...]] = []
    variables: List[str] = []
    warnings: List[str] = []

    def add_letter(letter: str) -> None:
        if letter not in letters:
            letters.append(letter)

    def read_jobs(text: str, spelled: str) -> None:
        number = js_number(text)
        if _DIGITS.fullmatch(text) and number > 0:
            state["jobs"] = _as_json_number(number)
        else:
            warnings.append(f"'{spelled}': the -j option requires a positive integer argument")

    def read_load(text: str, spelled: str) -> None:
        load = js_number(text)
        if text != "" and math.isfinite(load) and load >= 0:
            state["load"] = _as_json_number(load)
        else:
            warnings.append(f"'{spelled}': the -l option requires a number")

    i = 0

    def next_word_if(test) -> Optional[str]:
        nonlocal i
        if i < len(words) and test(words[i]):
            i += 1
            return words[i - 1]
        return None

    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            variables.extend(rest for rest in words[i:] if is_variable_definition(rest))
            break
        if word.startswith("--"):
            eq = word.find("=")
            name = word[2:] if eq < 0 else word[2:eq]
            inline = None if eq < 0 else word[eq + 1 :]
            if name == "jobs":
                arg = inline if inline is not None else next_word_if(_DIGITS.fullmatch)
                if arg is None:
                    state["jobs"] = "unlimited"
                else:
                    read_jobs(arg, word)
            elif name in ("load-average", "max-load"):
                arg = inline if inline is not None else next_word_if(_FLOAT_START.match)
                if arg is None:
                    state["load"] = "none"
                else:
                    read_load(arg, word)
            elif name in ("jobserver-auth", "jobserver-fds"):
                arg = inline if inline is not None else next_word_if(lambda _w: True)
                if arg is None:
                    warnings.append(f"'{word}' needs a value")
                else:
                    state["auth"] = arg
            elif name in _LONG_LETTER_ALIASES and inline is None:
                add_letter(_LONG_LETTER_ALIASES[name])
            elif name in _LONG_WITH_ARGUMENT and inline is None:
                arg = next_word_if(lambda _w: True)
                other_options.append((word,) if arg is None else (word, arg))
            else:
                other_options.append((word,))
            continue
        if word.startswith("-") and len(word) > 1:
            for j in range(1, len(word)):
                letter = word[j]
                rest = word[j + 1 :]
                if letter == "j":
                    arg = rest if rest != "" else next_word_if(_DIGITS.fullmatch)
                    if arg is None:
                        state["jobs"] = "unlimited"
                    else:
                        read_jobs(arg, f"-j{arg}")
                    break
                if letter == "l":
                    arg = rest if rest != "" else next_word_if(_FLOAT_START.match)
                    if arg is None:
                        state["load"] = "none"
                    else:
                        read_load(arg, f"-l{arg}")
                    break
                if letter == "O":
                    other_options.append((f"-O{rest}",))
                    break
                if letter in _SHORT_WITH_ARGUMENT:
                    if rest != "":
                        other_options.append((f"-{letter}{rest}",))
                    else:
                        arg = next_word_if(lambda _w: True)
                        other_options.append((f"-{letter}",) if arg is None else (f"-{letter}", arg))
                    break
                if _FLAG_LETTER.fullmatch(letter):
                    add_letter(letter)
                else:
                    warnings.append(f"'{letter}': not a make flag letter")
            continue
        # A non-option word: a variable definition, or a target (ignored), or '-'.
        if is_variable_definition(word):
            variables.append(word)

    auth = state["auth"]
    jobserver_auth = None
    if isinstance(auth, str):
        jobserver_auth = parse_jobserver_auth(auth, cwd)
        jobserver_auth = JobserverAuth(
            jobserver_auth.kind,
            path=None if jobserver_auth.path is None else _from_code_units(jobserver_auth.path),
            read_fd=jobserver_auth.read_fd,
            write_fd=jobserver_auth.write_fd,
            raw=None if jobserver_auth.raw is None else _from_code_units(jobserver_auth.raw),
            reason=jobserver_auth.reason,
        )
    back = _from_code_units
    return MakeFlags(
        letters=tuple(back(letter) for letter in letters),
        jobs=state["jobs"],  # type: ignore[arg-type]
        load_average=state["load"],  # type: ignore[arg-type]
        jobserver_auth=jobserver_auth,
        other_options=tuple(tuple(back(w) for w in option) for option in other_options),
        variables=tuple(back(v) for v in variables),
        warnings=tuple(back(w) for w in warnings),
    )


@dataclass(frozen=True)
class MakeflagsFromEnv:
    variable: str
    value: str
    flags: MakeFlags


def makeflags_from_env(env: Mapping[str, str], cwd: str) -> Optional[MakeflagsFromEnv]:
    """The first of CARGO_MAKEFLAGS, MAKEFLAGS, MFLAGS that is set decides
    (as @steve/protocol's makeflagsFromEnv); None when none is set."""
    for variable in MAKEFLAGS_ENV_VARS:
        value = env.get(variable)
        if value is not None:
            return MakeflagsFromEnv(variable, value, parse_makeflags(value, cwd))
    return None
