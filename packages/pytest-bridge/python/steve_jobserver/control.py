"""Asking the steve daemon's control socket how large the pool is.

The socket speaks newline-delimited JSON (``@steve/protocol``'s
control.ts): ``{"id":1,"type":"status"}`` is answered with
``{"id":1,"ok":true,"result":{"settings":{"jobs":N,...},"fronts":[...],...}}``.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Mapping, Optional

#: @steve/protocol's DEFAULT_CONTROL_SOCKET_PATH and CONTROL_SOCKET_ENV.
DEFAULT_CONTROL_SOCKET_PATH = "/run/steve/control.sock"
CONTROL_SOCKET_ENV = "STEVE_CONTROL"


def control_socket_path(env: Mapping[str, str]) -> str:
    return env.get(CONTROL_SOCKET_ENV) or DEFAULT_CONTROL_SOCKET_PATH


def status(path: str, timeout_s: float = 1.0) -> Optional[dict]:
    """The daemon's ``status`` result, or None when nobody answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(path)
            sock.sendall(b'{"id":1,"type":"status"}\n')
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    try:
        reply = json.loads(data.decode("utf-8").splitlines()[0])
    except (ValueError, IndexError):
        return None
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        return None
    result = reply.get("result")
    return result if isinstance(result, dict) else None


def pool_size(control_path: str, jobserver_path: Optional[str]) -> Optional[int]:
    """``settings.jobs`` of the daemon at ``control_path``, when that daemon
    serves ``jobserver_path`` (or when no path is known); else None."""
    result = status(control_path)
    if result is None:
        return None
    if jobserver_path is not None:
        served = {
            os.path.realpath(front.get("path", ""))
            for front in result.get("fronts", [])
            if isinstance(front, dict)
        }
        if os.path.realpath(jobserver_path) not in served:
            return None
    jobs = result.get("settings", {}).get("jobs")
    return jobs if isinstance(jobs, int) and jobs > 0 else None
