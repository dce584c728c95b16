"""Rotating file values: a secret read from a file and re-read when the file changes.

Kubernetes rotates a Secret volume by writing a new `..2026_...` directory and swapping the
`..data` symlink: the path stays, the inode behind it changes.  `FileValue.get()` looks at
the file (one `os.stat`, following symlinks) at most every `check_every` seconds and re-reads
it when its identity (device, inode, size, mtime) changed, so a rotation is seen within
seconds, without a restart and without failing a request: a file that vanished, or reads
empty, mid-swap keeps the last good value (one warning log line, without the value).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable

from egress.config import Secret
from egress.observe.logs import log

CHECK_EVERY = 1.0


class FileValue:
    """The stripped content of one file (trailing newline dropped), as a `Secret`."""

    def __init__(self, path: str, *, check_every: float = CHECK_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self._every, self._clock = path, check_every, clock
        self._identity: tuple = ()   # (device, inode, size, mtime) of what was read
        self._value: Secret | None = None
        self._failing = False
        self.generation = 0  # bumps on every change read (oauth2 uses it to see a new secret)
        self._refresh()
        self._next_check = clock() + check_every

    def get(self) -> Secret | None:
        """The current value; None only when the file was never readable."""
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self._every
            self._refresh()
        return self._value

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if identity == self._identity:
                return
            with open(self.path, "rb") as fh:
                text = fh.read(65536).decode().strip()
            if not text:
                raise ValueError  # logged as its type: an empty file
        except (OSError, ValueError) as exc:
            if not self._failing:  # once per outage; the path is config, the value never shown
                self._failing = True
                log(logging.WARNING, "credential file unreadable; keeping the last value",
                    file=self.path, error=type(exc).__name__)
            return
        if self._failing:
            self._failing = False
            log(logging.INFO, "credential file readable again", file=self.path)
        changed = self._value is not None and text != self._value
        self._identity, self._value = identity, Secret(text)
        self.generation += 1
        if changed:
            log(logging.INFO, "credential file changed; using the new value", file=self.path)
