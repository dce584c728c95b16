"""Structured JSON logs: one object per line, with trace_id/span_id where there is one.

Only egress-written fields are logged; callers of `log()` pass names, counts and reasons,
never header values, tokens, credentials or payload values.

The access log (`log_fast`) is written in batches: the lines of one event-loop iteration
(every exchange that finished in it) go out in one write(2) at the start of the next one,
instead of one line-buffered write per request; `flush()` writes what is pending (a `log()`
line, `setup_logging` and process exit flush first, so lines keep their order).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time

import orjson

LOGGER = logging.getLogger("egress")
_FAST: dict = {"stream": None}  # set by setup_logging: the stream our one JSON handler writes to
_PENDING: list[bytes] = []  # access-log lines not yet written (one event-loop iteration's)
MAX_PENDING = 512  # lines: written at once beyond this, whatever the loop does
_SECOND: list = [-1, ""]  # the last whole second formatted by _timestamp, and its text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            doc["error_type"] = record.exc_info[0].__name__
        return orjson.dumps(doc, default=str).decode()


def setup_logging(level: str = "info") -> None:
    flush()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    _FAST["stream"] = handler.stream


def _timestamp(now: float) -> str:
    second = int(now)
    if second != _SECOND[0]:  # strftime once a second, not once a line
        _SECOND[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return _SECOND[1] + _MILLIS[int(now * 1000) % 1000]


_MILLIS = [f".{ms:03d}Z" for ms in range(1000)]  # the ".mmmZ" tail of every millisecond, formatted once


def flush() -> None:
    """Write the pending access-log lines in one call (a failing stream drops them, as
    logging's handlers do: a log line never fails a request)."""
    if not _PENDING:
        return
    data = b"\n".join(_PENDING) + b"\n"
    _PENDING.clear()
    stream = _FAST["stream"]
    if stream is None:
        return
    try:
        raw = getattr(stream, "buffer", None)
        if raw is not None:
            stream.flush()  # whatever logging wrote through the text layer goes first
            raw.write(data)
            raw.flush()
        else:
            stream.write(data.decode())
            stream.flush()
    except (OSError, ValueError):
        pass


atexit.register(flush)


def log_fast(msg: str, fields: dict) -> None:
    """An INFO line for the per-request hot path (the access log): the same JSON as
    JsonFormatter, written in one call, without logging's record machinery — only when
    setup_logging owns the output and nothing else listens on the egress logger; otherwise
    through logging, so handlers added by embedders and tests still see every line."""
    stream = _FAST["stream"]
    if stream is None or LOGGER.handlers or not LOGGER.isEnabledFor(logging.INFO):
        log(logging.INFO, msg, **fields)
        return
    doc = {"ts": _timestamp(time.time()), "level": "info", "logger": "egress", "msg": msg}
    doc.update(fields)
    queue(orjson.dumps(doc, default=str))


def direct() -> bool:
    """log_fast writes its own lines: setup_logging owns the output and no handler listens on
    the egress logger (the caller checked the level)."""
    return _FAST["stream"] is not None and not LOGGER.handlers


def now() -> str:
    """The `ts` of a line written now (JsonFormatter's format, milliseconds, UTC)."""
    return _timestamp(time.time())


def queue(line: bytes) -> None:
    """One finished JSON line for the next batched write (log_fast's lines, and the access
    log's when direct())."""
    _PENDING.append(line)
    if len(_PENDING) == 1:
        try:
            asyncio.get_running_loop().call_soon(flush)
        except RuntimeError:  # no event loop (a CLI command, a test): write now
            flush()
    elif len(_PENDING) >= MAX_PENDING:
        flush()


def log(level: int, msg: str, **fields) -> None:
    if LOGGER.isEnabledFor(level):
        if _PENDING:
            flush()
        LOGGER.log(level, msg, extra={"fields": fields})
