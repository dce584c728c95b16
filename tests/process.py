"""Start `egress serve` as a real process on free ports, and stop it."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml


_GIVEN: set[int] = set()  # ports this process handed out already


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port free now, for a server started later: below the kernel's ephemeral range
    (outgoing connections draw their local ports from it, so a port picked there can be taken by
    a client before the server binds it) and never handed out twice by this process (several
    servers picked before any starts)."""
    low, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, low) if low > 11000 else 0
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port
    raise RuntimeError("no free loopback port found")


class EgressProcess:
    def __init__(self, doc: dict, tmp: Path, *, env: dict | None = None, args: tuple = ()) -> None:
        self.port, self.admin_port = free_port(), free_port()
        doc = {**doc, "listen": f"127.0.0.1:{self.port}", "admin_listen": f"127.0.0.1:{self.admin_port}"}
        self.config = tmp / f"egress-{self.port}.yaml"
        self.config.write_text(yaml.safe_dump(doc))
        self.log = tmp / f"egress-{self.port}.log"
        self._env = {**os.environ, **(env or {})}
        self._args = args
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 15) -> "EgressProcess":
        self._logf = open(self.log, "wb")
        workers = [] if "--workers" in self._args else ["--workers", "1"]  # one process unless asked
        self.proc = subprocess.Popen([sys.executable, "-m", "egress", "serve", "--config", str(self.config),
                                      *workers, *self._args], stdout=self._logf, stderr=subprocess.STDOUT,
                                     env=self._env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"egress exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.admin_port), 0.2):
                    with socket.create_connection(("127.0.0.1", self.port), 0.2):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"egress did not start: {self.log.read_text()}")

    async def astart(self) -> "EgressProcess":
        return await asyncio.to_thread(self.start)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()
        return self.proc.returncode

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


async def start_all(procs: list["EgressProcess"]) -> None:
    """Start every process; if one fails, stop them all (none left running) and raise its error."""
    results = await asyncio.gather(*(p.astart() for p in procs), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        for p in procs:
            await asyncio.to_thread(p.stop)
        raise failed[0]
