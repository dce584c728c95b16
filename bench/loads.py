"""Closed-loop load with wrk, and its output parsed.

    run_wrk(url, duration, headers=..., script=None, script_args=(), cpus="1") -> dict
        {"rps", "requests", "p50_ms", "p90_ms", "p99_ms", "non2xx", "socket_errors", ...}

wrk runs with 1 thread and 32 connections (one load-generator core; see docs/performance.md).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

CONNECTIONS, THREADS = 32, 1

# the memory scenario: 1,000 callers x 1,000 templated operations, drawn independently
VARIED_LUA = r"""
local prefix, callers, ops = "", 1000, 1000
function init(args)
  prefix = args[1]
  math.randomseed(tonumber(args[2]))
  ops = tonumber(args[3] or ops)
end
local n = 0
function request()
  n = n + 1
  local op = math.random(0, ops - 1)
  local caller = math.random(0, callers - 1)
  local path = string.format("%s/r%d/charges/ch_%d", prefix, op, math.random(1, 1000000))
  return wrk.format("GET", path, {["X-Egress-Caller"] = string.format("svc-%03d", caller),
                                  ["Authorization"] = wrk.headers["Authorization"]})
end
"""

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unparsed wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    res: dict = {"non2xx": 0, "socket_errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    res["requests"] = int(m.group(1)) if m else 0
    for q in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{q}%\s+([\d.]+\w+)", out, re.M)
        res[f"p{q}_ms"] = _ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = sum(int(g) for g in m.groups())
    return res


def run_wrk(url: str, duration: float, *, headers: dict[str, str], script: Path | None = None,
            script_args: tuple[str, ...] = (), cpus: str | None = "1",
            connections: int = CONNECTIONS) -> dict:
    cmd = ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
           "--timeout", "5s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if script_args:
        cmd += ["--", *script_args]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[:300]}")
    res = parse_wrk(done.stdout)
    res["duration_s"] = duration
    return res
