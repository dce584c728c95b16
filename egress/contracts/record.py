"""Recording response bodies for `learn`: a bounded, private samples directory.

Layout (read by `learn.py`):

    <dir>/<upstream>/<operation-key>/<status>/<n>.json      the body as received
    <dir>/<upstream>/<operation-key>/<status>/<n>.meta.json  {"operation", "status", "content_type"}

`operation-key` is the operation template (or `METHOD /path`) made filesystem-safe.  Directories
are created 0700 and files 0600; at most `max_files_per_operation` bodies are kept per
upstream/operation (across statuses) and bodies larger than `max_bytes` are not recorded.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import orjson

_UNSAFE = re.compile(r"[^A-Za-z0-9._{}-]+")


def safe_name(text: str) -> str:
    """A file name for an upstream or operation: readable, unique (short hash), never a path."""
    readable = _UNSAFE.sub("_", text).strip("._")[:80] or "_"
    return f"{readable}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


class Recorder:
    """Writes response bodies for later `learn`; bounded in count and size, private on disk."""

    def __init__(self, directory: Path, max_files_per_operation: int = 20, max_bytes: int = 1_048_576,
                 max_operations: int = 500) -> None:
        if max_files_per_operation < 1 or max_bytes < 1:
            raise ValueError("max_files_per_operation and max_bytes must be >= 1")
        self.directory = Path(directory)
        self.max_files = max_files_per_operation
        self.max_bytes = max_bytes
        self.max_operations = max_operations  # bounds the directory whatever paths callers send
        self._counts: dict[tuple[str, str], int] = {}

    def _mkdir(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)

    def record(self, upstream: str, operation: str, status: int, content_type: str | None, body: bytes) -> bool:
        """Store one body; False when it was skipped (too large, or the operation is full)."""
        if len(body) > self.max_bytes:
            return False
        op_dir = self.directory / safe_name(upstream) / safe_name(operation)
        key = (upstream, operation)
        if key not in self._counts:
            if len(self._counts) >= self.max_operations:
                return False
            self._counts[key] = sum(1 for _ in op_dir.glob("*/*.meta.json")) if op_dir.exists() else 0
        if self._counts[key] >= self.max_files:
            return False
        for part in (self.directory, self.directory / safe_name(upstream), op_dir, op_dir / str(status)):
            self._mkdir(part)
        n = self._counts[key]
        base = op_dir / str(status) / f"{n:06d}"
        meta = {"upstream": upstream, "operation": operation, "status": status, "content_type": content_type}
        self._write(base.with_suffix(".json"), body)
        self._write(base.with_suffix(".meta.json"), orjson.dumps(meta))
        self._counts[key] = n + 1
        return True

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(path, 0o600)
