"""The processes the benchmark starts: each in its own session, each stopped by its own id.

    procs = Processes(log_dir)
    p = procs.start("egress", [...], cpus="0", env=...)   # taskset -c when cpus is given
    wait_http(url, timeout)                                 # until it answers (any status)
    rss_mb(pid), tree_rss_mb(pid)
    procs.stop_all()                                        # SIGTERM, then SIGKILL after a grace
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair() -> int:
    """A port p with p + 1 free too (checked now; nothing is held)."""
    for _ in range(50):
        p = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no two adjacent free ports")


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> float:
    """Seconds until `url` answers anything; raises if the process dies or time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return time.monotonic() - start
        except urllib.error.HTTPError:
            return time.monotonic() - start
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], *, cpus: str | None = None, env: dict | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        if cpus is not None:
            cmd = ["taskset", "-c", cpus, *cmd]
        out = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
        out.close()
        self.running[name] = proc
        return proc

    def stop(self, name: str, grace: float = 5.0) -> None:
        proc = self.running.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        pgid = proc.pid  # start_new_session: the group is the process's own, and only ours
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # stragglers of the group (e.g. egress workers)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


# ------------------------------------------------------------------ other people's CPU
# The machine is shared (other sessions run test suites): each measurement records how much
# CPU processes that are not ours used meanwhile, and may first wait (bounded) for quiet.
_TICK = os.sysconf("SC_CLK_TCK")


def _busy_ticks() -> int:
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[:8])
    return user + nice + system + irq + softirq + steal


def _our_ticks(root: int) -> int:
    parents, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        own = int(fields[11]) + int(fields[12])          # utime + stime
        if pid == root:
            own += int(fields[13]) + int(fields[14])     # + reaped children (wrk, generators)
        ticks[pid] = own
    total = 0
    for pid, own in ticks.items():
        p, hops = pid, 0
        while p and p != root and hops < 64:
            p, hops = parents.get(p, 0), hops + 1
        if p == root:
            total += own
    return total


class ForeignCpu:
    """Cores used by processes outside this benchmark's tree between start() and stop()."""

    def __init__(self) -> None:
        self.root = os.getpid()

    def snapshot(self) -> tuple[float, int, int]:
        return time.monotonic(), _busy_ticks(), _our_ticks(self.root)

    def since(self, snap: tuple[float, int, int]) -> float:
        t0, busy0, ours0 = snap
        t1, busy1, ours1 = self.snapshot()
        return max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / _TICK / max(t1 - t0, 1e-3))

    def wait_quiet(self, threshold: float, max_wait: float, window: float = 1.0) -> tuple[float, float]:
        """Wait (at most max_wait s) for a `window` with others below `threshold` cores.
        Returns (seconds waited, others' cores in the last window)."""
        start = time.monotonic()
        while True:
            snap = self.snapshot()
            time.sleep(window)
            cores = self.since(snap)
            waited = time.monotonic() - start
            if cores < threshold or waited >= max_wait:
                return waited, cores


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by pid and its live descendants (worker processes)."""
    return _our_ticks(pid) / _TICK
