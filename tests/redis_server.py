"""A real redis-server for tests: a free loopback port, a temp dir, started and stopped by the test.

    server = RedisServer(tmp_path); server.start(); ... server.kill(); server.start(); ... server.stop()

`REDIS_SERVER` is None when the binary is absent: tests skip with `SKIP_REASON`
(CI installs it with `apt-get install redis-server`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

try:  # one port picker for every test server (no port handed out twice)
    from tests.process import free_port
except ImportError:  # imported by its directory (test_breaker_store_redis.py's fallback)
    from process import free_port  # type: ignore[no-redef]

REDIS_SERVER = shutil.which("redis-server")
SKIP_REASON = "redis-server binary not found on PATH (apt-get install redis-server)"




class RedisServer:
    """One redis-server process, no persistence, bound to 127.0.0.1; restartable on the same port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.dir = Path(directory)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 5.0) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError(SKIP_REASON)
        log = open(self.dir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.dir}")
            if self._pong():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING on port {self.port} within {timeout}s")

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """Crash it (SIGKILL), as an outage would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
