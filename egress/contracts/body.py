"""Turning response bytes into a JSON value safely: nesting bounded before parsing, exact numbers.

1. Parse with orjson (its own nesting limit, 1,024, keeps a 100,000-deep bomb off the C stack).
2. Depth and duplicate keys from one re-serialisation of the value, indented (`OPT_INDENT_2`):
   newlines there are structural only (strings escape theirs), and a value inside k containers
   starts a line with 2k spaces, so one search for a newline and `2 * max_depth` spaces finds
   any body that reaches the limit; only those are measured exactly (`too_deep`).  Duplicate
   keys: a caller whose parser keeps the first value would read what the validator never saw
   (orjson keeps the last).  Re-serialising drops each duplicate member and its ':', so fewer
   colons than in the body means a duplicate; escapes can only add colons, so a body with
   backslash-u escapes is checked exactly instead.  Past orjson's writer limit (254 levels)
   both checks take the exact path.  A body that IS orjson's writing of its value (2-space
   indented, or compact; `_written_by_orjson`) holds no duplicate by construction: one memcmp
   replaces the two colon counts (~100 µs of a 65 KB body).
3. `too_deep` (refusals, and bodies near the limit): escapes are removed, then everything but
   quotes and brackets, then string contents; the bracket skeleton is peeled one nesting level
   per pass with `bytes.replace` (C speed, at most `max_depth` passes).  Only valid JSON matters
   there: anything the skeleton misjudges is invalid JSON that the parser rejects.
4. orjson is exact for integers within 64 bits and for decimals of at most 15 significant digits
   (those keep their order and integer-ness as doubles); anything else is checked as written.
   One C-speed pass (`translate`, then `rfind`, about twice `find`'s speed on these patterns)
   finds candidates: a run of 16+ digits and dots, or a negative exponent.  Only then are the
   candidates read precisely (16+ significant digits, 64-bit integer overflow, exponent
   <= -300); only a number that needs it makes the body be re-parsed exactly: jiter (one native
   pass, Decimal floats, big integers exact, duplicate keys refused), and wherever jiter refuses
   the standard library with Decimals: it reads what jiter cannot (nesting past about 200,
   integers past 4,300 digits) and words every refusal without quoting the body, as jiter's
   messages do.  NaN/Infinity literals are rejected in every path; invalid UTF-8 and lone
   surrogates too.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import jiter
import orjson

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
# digits and dots -> "0", exponent letters -> "e", "-" kept, everything else -> " "
_NUMBER_MAP = bytes(ord("0") if b < 128 and chr(b) in "0123456789." else ord("e") if b in (69, 101)
                    else b if b == 45 else 32 for b in range(256))
_LONG_RUN = b"0" * 16  # every number orjson reads inexactly has 16+ digits (and a dot) in a row
_NEGATIVE_EXPONENT_AT = b"0e-000"  # a digit, "e-", then 3+ digits
_NUMBER_AT = re.compile(rb"-?[0-9]*\.?[0-9]*(?:[eE][-+]?[0-9]+)?")
_DIGITS_AT = re.compile(rb"[0-9]+")
_KEEP = frozenset(b'"[]{}')
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_TO_PARENS = bytes.maketrans(b"[{]}", b"(())")
NOT_JSON = "body is not valid JSON"
NOT_UTF8 = "body is not valid UTF-8"
DUPLICATE_KEYS = "JSON object has duplicate keys"
NUMBER_RANGE = "JSON number outside the range egress reads exactly"


class BodyError(ValueError):
    """The body is not acceptable JSON; the message describes why without quoting it."""


def too_deep(body: bytes, max_depth: int) -> bool:
    """Whether the JSON text nests arrays/objects deeper than `max_depth` (C-speed bytes
    operations only: a 65 KB body costs about a hundred microseconds, a 100,000-deep bomb a few ms)."""
    # keep quotes and brackets only, both bracket kinds as parentheses (a mismatched pair is
    # invalid JSON, which the parser rejects anyway); escapes first, so that no \" is kept
    skeleton = _ESCAPE.sub(b"", body).translate(_TO_PARENS, _DROP)
    skeleton = b"".join(skeleton.split(b'"')[0::2])  # quotes alternate: odd pieces are in strings
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
    raise BodyError(NOT_JSON)  # NaN, Infinity, -Infinity


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise BodyError(DUPLICATE_KEYS)
    return obj


def _exact(body: bytes) -> Any:
    """`body` parsed with every number exact (Decimal or int) and duplicate keys refused."""
    try:
        return jiter.from_json(body, float_mode="decimal", catch_duplicate_keys=True, allow_inf_nan=False)
    except ValueError:  # jiter's messages quote the input: never passed on.  The standard library
        return _exact_stdlib(body)  # words the refusal, and reads what jiter cannot (deep, huge ints)


def _exact_stdlib(body: bytes) -> Any:
    try:
        value = json.loads(body.decode(), parse_int=Decimal, parse_float=Decimal, parse_constant=_reject_constant,
                           object_pairs_hook=_unique_pairs)
        json.dumps(value, ensure_ascii=False, default=str).encode()  # a lone surrogate escape cannot encode
        return value
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise BodyError(NOT_UTF8) from None
    except RecursionError:
        raise BodyError("JSON nested too deeply") from None
    except ArithmeticError:  # decimal.InvalidOperation: an exponent past what a Decimal holds
        raise BodyError(NUMBER_RANGE) from None
    except BodyError:
        raise
    except ValueError:
        raise BodyError(NOT_JSON) from None


def needs_exact(body: bytes) -> bool:
    """Does a number in `body` lose something as orjson reads it (a double, or a 64-bit int)?
    False positives (digits inside strings) only cost an exact parse; no number is missed."""
    mapped = body.translate(_NUMBER_MAP)
    at = mapped.rfind(_NEGATIVE_EXPONENT_AT)
    while at != -1:
        if _exponent_from(body, at + 3):  # subnormal, or 0.0
            return True
        at = mapped.rfind(_NEGATIVE_EXPONENT_AT, 0, at + len(_NEGATIVE_EXPONENT_AT) - 1)
    at = mapped.rfind(_LONG_RUN)
    while at != -1:  # the rightmost match ends its run: widen it leftwards
        while at and mapped[at - 1] == 48:
            at -= 1
        token = _NUMBER_AT.match(body, at - 1 if at and body[at - 1] == 45 else at).group()
        mantissa, _, _ = token.replace(b"E", b"e").partition(b"e")
        digits = mantissa.removeprefix(b"-")
        if b"." in digits or len(mantissa) < len(token):  # a decimal: exact up to 15 significant digits
            if len(digits.replace(b".", b"").lstrip(b"0")) > 15:
                return True
        elif len(digits) >= 20 or (len(digits) == 19 and mantissa.startswith(b"-")):  # past 64 bits
            return True
        at = mapped.rfind(_LONG_RUN, 0, at)
    return False


def _exponent_from(body: bytes, at: int) -> bool:
    """Do the digits at `at` (a negative exponent's) read 300 or more?  Digits only (a dot there is
    no exponent: a string's text), compared as text (no int() of thousands of digits)."""
    digits = _DIGITS_AT.match(body, at)
    if digits is None:
        return False
    value = digits.group().lstrip(b"0")
    return len(value) > 3 or (len(value) == 3 and value >= b"300")


def parse_json(body: bytes, max_depth: int = 64) -> Any:
    """The JSON value of `body`; BodyError when it is too deep, not UTF-8 or not JSON."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if too_deep(body, max_depth):
            raise BodyError(f"JSON nested deeper than {max_depth}") from None
        if "infinity" in str(exc):
            return _exact(body)
        if "UTF-8" in str(exc) or "surrogate" in str(exc):
            raise BodyError(NOT_UTF8) from None
        raise BodyError(NOT_JSON) from None
    try:
        shape = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except orjson.JSONEncodeError:  # nested past orjson's writer limit: both checks go exact
        shape = None
    if (shape is None or b"\n" + b" " * (2 * max_depth) in shape) and too_deep(body, max_depth):
        raise BodyError(f"JSON nested deeper than {max_depth}")
    if needs_exact(body):  # orjson may have rounded a number: check it as written
        return _exact(body)
    if b"{" in body:
        if shape is None or (b"\\" in body and b"\\u" in body):  # one-byte search first: memchr speed
            _exact(body)  # raises on duplicate keys
        elif not _written_by_orjson(body, shape, value) and shape.count(b":") < body.count(b":"):
            raise BodyError(DUPLICATE_KEYS)
    return value


def _written_by_orjson(body: bytes, shape: bytes, value: Any) -> bool:
    """Is `body` orjson's own writing of `value` (2-space indented, or compact), whitespace after it aside?
    Then it holds no duplicate key: each object of `value` has each key once, and distinct keys
    write distinct strings.  A memcmp instead of two colon counts (~100 µs at 65 KB); a body
    written any other way (other spacing, escapes, number forms) takes the colon counts.  Asked
    only of bodies without backslash-u escapes (those are checked exactly, and orjson never
    writes one but for a control character)."""
    if body.startswith(shape):  # what follows is whitespace: orjson parsed the whole body
        return True
    head = body[:256]  # a sniff, not a proof: it only decides whether the compact writing is tried
    if b"\n" in head or b'": ' in head or b", " in head:  # spaced, but not as orjson indents
        return False
    return body.startswith(orjson.dumps(value))
