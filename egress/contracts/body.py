"""Turning response bytes into a JSON value safely: nesting bounded before parsing, exact numbers.

1. Depth: escapes are removed, then everything but quotes and brackets, then string contents; the
   remaining bracket skeleton is checked for a run of openers deeper than the limit (catches a
   100,000-deep bomb in one regex pass) and then peeled one level per pass (C-speed `re.sub`, at
   most `max_depth` passes, none for small bodies).  Only valid JSON matters here: anything the
   skeleton misjudges is invalid JSON that the parser then rejects.
2. Parse with orjson.  orjson turns integers beyond 64 bits into (rounded) floats and rejects
   numbers beyond double range, so when the body holds a run of 20+ digits, or orjson rejected a
   number as infinite, the body is re-parsed with the standard library into `Decimal`s: exact
   for any size (a 100,000-digit integer included) and the validator compares Decimals exactly.
   NaN/Infinity literals are rejected in both paths; invalid UTF-8 and lone surrogates too.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_PAIR = re.compile(rb"\[\]|\{\}")
_DIGIT_MAP = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord(" ") for b in range(256))
_TWENTY_DIGITS = b"0" * 20
_KEEP = frozenset(b'"[]{}')
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_OPENERS: dict[int, re.Pattern[bytes]] = {}


class BodyError(ValueError):
    """The body is not acceptable JSON; the message describes why without quoting it."""


def too_deep(body: bytes, max_depth: int) -> bool:
    """Whether the JSON text nests arrays/objects deeper than `max_depth`."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    text = _ESCAPE.sub(b"", body) if b"\\" in body else body
    skeleton = _STRING.sub(b"", text.translate(None, _DROP))
    if len(skeleton) // 2 <= max_depth:
        return False
    run = _OPENERS.get(max_depth)
    if run is None:
        run = _OPENERS[max_depth] = re.compile(rb"[\[{]{%d}" % (max_depth + 1))
    if run.search(skeleton):
        return True
    for _ in range(max_depth):
        skeleton, count = _PAIR.subn(b"", skeleton)
        if not skeleton or not count:
            return False  # shallow enough, or malformed (the parser rejects it)
    return bool(skeleton)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _exact(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_int=Decimal, parse_float=Decimal, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise BodyError("body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise BodyError("JSON nested too deeply") from exc
    except ValueError as exc:
        raise BodyError(f"invalid JSON ({type(exc).__name__})") from exc


def parse_json(body: bytes, max_depth: int = 64) -> Any:
    """The JSON value of `body`; BodyError when it is too deep, not UTF-8 or not JSON."""
    if too_deep(body, max_depth):
        raise BodyError(f"JSON nested deeper than {max_depth}")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "infinity" in str(exc):
            return _exact(body)
        if "UTF-8" in str(exc) or "surrogate" in str(exc):
            raise BodyError("body is not valid UTF-8") from exc
        raise BodyError("body is not valid JSON") from exc
    if _TWENTY_DIGITS in body.translate(_DIGIT_MAP):  # orjson may have rounded a big integer
        return _exact(body)
    return value
