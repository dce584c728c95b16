"""Turning response bytes into a JSON value safely: nesting bounded before parsing, exact numbers.

1. Depth: escapes are removed, then everything but quotes and brackets, then string contents;
   the bracket skeleton is peeled one nesting level per pass with `bytes.replace` (C speed, at
   most `max_depth` passes, none for small bodies).  Only valid JSON matters here: anything the
   skeleton misjudges is invalid JSON that the parser then rejects.
2. Parse with orjson.  orjson turns integers beyond 64 bits into (rounded) floats and rejects
   numbers beyond double range, so when the body holds a run of 20+ digits, or orjson rejected a
   number as infinite, the body is re-parsed with the standard library into `Decimal`s: exact
   for any size (a 100,000-digit integer included) and the validator compares Decimals exactly.
   NaN/Infinity literals are rejected in both paths; invalid UTF-8 and lone surrogates too.
3. Duplicate keys are refused: a caller whose parser keeps the first value would read what
   the validator never saw (orjson keeps the last).  Re-serializing drops each duplicate
   member and its ':' — a cheap C-speed comparison of colon counts; escapes can only add
   colons, so a body with backslash-u escapes is checked exactly (object_pairs_hook) instead.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_DIGIT_MAP = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord(" ") for b in range(256))
_TWENTY_DIGITS = b"0" * 20
_KEEP = frozenset(b'"[]{}')
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_TO_PARENS = bytes.maketrans(b"[{]}", b"(())")


class BodyError(ValueError):
    """The body is not acceptable JSON; the message describes why without quoting it."""


def too_deep(body: bytes, max_depth: int) -> bool:
    """Whether the JSON text nests arrays/objects deeper than `max_depth` (C-speed bytes
    operations only: a 65 KB body costs tens of microseconds, a 100,000-deep bomb a few ms)."""
    if len(body) <= max_depth:
        return False
    text = _ESCAPE.sub(b"", body) if b"\\" in body else body
    # keep quotes and brackets only, both bracket kinds as parentheses (a mismatched pair is
    # invalid JSON, which the parser rejects anyway)
    skeleton = text.translate(_TO_PARENS, _DROP)
    if skeleton.count(b"(") <= max_depth:  # counted on the skeleton: a fraction of the body
        return False
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:  # strings that held brackets: quotes alternate, even pieces are outside
        skeleton = b"".join(skeleton.split(b'"')[0::2])
    for _ in range(max_depth):
        # bytes.replace never rescans its output, so one pass removes exactly one level
        peeled = skeleton.replace(b"()", b"")
        if not peeled:
            return False
        if len(peeled) == len(skeleton):  # nothing closes: malformed; deep if enough is open
            return peeled.count(b"(") > max_depth
        skeleton = peeled
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise BodyError("JSON object has duplicate keys")
    return obj


def _exact(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_int=Decimal, parse_float=Decimal, parse_constant=_reject_constant,
                          object_pairs_hook=_unique_pairs)
    except UnicodeDecodeError as exc:
        raise BodyError("body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise BodyError("JSON nested too deeply") from exc
    except BodyError:
        raise
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
    if b"{" in body:
        if b"\\" in body and b"\\u" in body:  # one-byte search first: memchr speed
            _exact(body)  # raises on duplicate keys
        elif orjson.dumps(value).count(b":") < body.count(b":"):
            raise BodyError("JSON object has duplicate keys")
    return value
