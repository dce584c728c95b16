"""Structured JSON logs: one object per line, with trace_id/span_id where there is one.

Only egress-written fields are logged; callers of `log()` pass names, counts and reasons,
never header values, tokens, credentials or payload values.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

LOGGER = logging.getLogger("egress")
_FAST: dict = {"stream": None}  # set by setup_logging: the stream our one JSON handler writes to


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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    _FAST["stream"] = handler.stream


def _timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


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
    stream.write(orjson.dumps(doc, default=str).decode() + "\n")


def log(level: int, msg: str, **fields) -> None:
    if LOGGER.isEnabledFor(level):
        LOGGER.log(level, msg, extra={"fields": fields})
