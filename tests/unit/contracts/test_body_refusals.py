"""contracts/body.parse_json: every refusal with its reason, and the values it returns (named cases).

Every refusal is the BodyError message, asserted whole: the proxy turns each into `invalid_json`
with the message as the problem's detail, the same words whichever path (orjson, jiter, the
standard library) found it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from egress.contracts.body import BodyError, needs_exact, parse_json, too_deep


def nest(depth: int, inner: bytes = b"1", kind: str = "array") -> bytes:
    if kind == "array":
        return b"[" * depth + inner + b"]" * depth
    return b'{"a":' * depth + inner + b"}" * depth


def nest_value(depth: int, inner):
    for _ in range(depth):
        inner = [inner]
    return inner


DUP, UTF8, JSON = "JSON object has duplicate keys", "body is not valid UTF-8", "body is not valid JSON"


def deeper(n: int) -> str:
    return f"JSON nested deeper than {n}"


def outcome(body: bytes, max_depth: int = 64):
    try:
        return "ok", parse_json(body, max_depth)
    except BodyError as exc:
        return "refused", str(exc)


HUGE_INT = b"7" * 5000  # past jiter's and int()'s 4,300 digits
REFUSED = [
    # id, body, max_depth, the message (the problem's detail; the reason is invalid_json)
    ("duplicate-top-level", b'{"a": 1, "a": 2}', 64, DUP),
    ("duplicate-first-value-hostile", b'{"amount": "evil", "amount": 5}', 64, DUP),
    ("duplicate-at-depth-5", nest(4, b'{"k": 1, "k": 1}'), 64, DUP),
    ("duplicate-in-second-array-item", b'[{"a": 1}, {"b": 1, "b": 2}]', 64, DUP),
    ("duplicate-colons-in-strings", b'{"t": "12:30:00", "a": "x:y", "a": "z"}', 64, DUP),
    ("duplicate-after-unicode-escape", b'{"a": 1, "\\u0061": 2}', 64, DUP),
    ("duplicate-masked-by-escaped-colon", b'{"a": 1, "a": "\\u003a"}', 64, DUP),
    ("duplicate-with-an-exact-number", b'{"n": 1.0000000000000001, "n": 2}', 64, DUP),
    ("duplicate-with-an-overflowing-number", b'{"n": 1e400, "n": 2}', 64, DUP),
    ("duplicate-in-a-body-300-deep", nest(299, b'{"a": 1, "a": 2}'), 10_000, DUP),
    ("duplicate-past-jiter-depth-with-exact-number", nest(250, b'{"a": 1e-400, "a": 2}'), 10_000, DUP),
    ("one-past-the-limit", nest(65), 64, deeper(64)),
    ("one-past-the-default-limit", nest(65), None, deeper(64)),
    ("empty-array-one-past-the-limit", nest(64, b"[]"), 64, deeper(64)),
    ("empty-object-one-past-the-limit", nest(64, b"{}", "object"), 64, deeper(64)),
    ("objects-one-past-the-limit", nest(65, kind="object"), 64, deeper(64)),
    ("limit-of-one", b"[[1]]", 1, deeper(1)),
    ("limit-of-two-past-writer-depth", nest(300), 2, deeper(2)),
    ("past-orjson-writer-limit-and-ours", nest(400), 300, deeper(300)),
    ("bomb-100000-arrays", nest(100_000), 64, deeper(64)),
    ("bomb-100000-objects", nest(100_000, kind="object"), 64, deeper(64)),
    ("bomb-100000-unclosed", b"[" * 100_000, 64, deeper(64)),
    ("unclosed-at-the-limit-is-not-deep", b"[[", 2, JSON),
    ("deep-and-duplicate-reports-depth", nest(70, b'{"a": 1, "a": 2}'), 64, deeper(64)),
    ("exact-path-past-the-recursion-limit", b"[1e400, " + nest(1100) + b"]", 10_000, "JSON nested too deeply"),
    ("nan", b'{"n": NaN}', 64, JSON),
    ("infinity", b"[Infinity]", 64, JSON),
    ("minus-infinity", b"[-Infinity]", 64, JSON),
    ("nan-after-an-overflowing-number", b"[1e400, NaN]", 64, JSON),
    ("infinity-after-an-overflowing-number-deep", nest(250, b"[1e400, -Infinity]"), 10_000, JSON),
    ("invalid-utf8", b'{"id": "\xff\xfe"}', 64, UTF8),
    ("invalid-utf8-after-an-overflowing-number", b'[1e400, "\xff"]', 64, UTF8),
    ("lone-surrogate", b'{"id": "\\ud800"}', 64, UTF8),
    ("lone-surrogate-after-an-overflowing-number", b'[1e400, "\\ud800"]', 64, UTF8),
    ("lone-surrogate-key-after-a-huge-integer", b"[" + HUGE_INT + b', {"\\udc00": 1}]', 64, UTF8),
    ("lone-surrogate-deep-after-an-overflowing-number", nest(250, b'[1e400, "\\ud800"]'), 10_000, UTF8),
    ("trailing-garbage", b'{"a": 1} x', 64, JSON),
    ("trailing-garbage-after-an-overflowing-number", b"[1e400] x", 64, JSON),
    ("two-documents", b"[1][2]", 64, JSON),
    ("byte-order-mark-as-today", b'\xef\xbb\xbf{"a": 1}', 64, UTF8),
    ("empty", b"", 64, JSON),
    ("truncated", b'{"a": ', 64, JSON),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused(case):
    _, body, max_depth, message = case
    if max_depth is None:
        with pytest.raises(BodyError) as refused:
            parse_json(body)
        assert str(refused.value) == message
    else:
        assert outcome(body, max_depth) == ("refused", message)


ACCEPTED = [
    # id, body, max_depth, the value it must return
    ("exactly-the-limit", nest(64), 64, None),
    ("exactly-the-default-limit", nest(64), None, None),
    ("strings-with-brackets-at-the-limit", b'[["[", 1], ["[", 1], ["[", 1]]', 2, [["[", 1], ["[", 1], ["[", 1]]),
    ("exactly-the-limit-of-objects", nest(64, kind="object"), 64, None),
    ("empty-array-at-the-limit", nest(63, b"[]"), 64, None),
    ("limit-of-one", b"[1, 2]", 1, [1, 2]),
    ("scalar-with-limit-of-one", b"5", 1, 5),
    ("brackets-in-strings-do-not-nest", b'["[[[[[[", "{{{{"]', 2, ["[[[[[[", "{{{{"]),
    ("escaped-newlines-and-spaces", b'["\\n' + b" " * 200 + b'"]', 2, ["\n" + " " * 200]),
    ("300-deep-with-a-high-limit", nest(300, b'{"a": 1}'), 10_000, None),
    ("colons-in-strings-no-duplicate", b'{"t": "12:30:00", "u": "a:b:c"}', 64,
     {"t": "12:30:00", "u": "a:b:c"}),
    ("escaped-distinct-keys", b'{"a": 1, "\\u0062": 2}', 64, {"a": 1, "b": 2}),
    ("escaped-colon-no-duplicate", b'{"a": "\\u003a", "b": 1}', 64, {"a": ":", "b": 1}),
    ("same-key-in-sibling-objects", b'[{"a": 1}, {"a": 2}]', 64, [{"a": 1}, {"a": 2}]),
    ("big-integer-exact", b'{"n": 18446744073709551617000}', 64, {"n": 18446744073709551617000}),
    ("negative-big-integer-exact", b"[-9999999999999999999]", 64, [-9999999999999999999]),
    ("long-decimal-exact", b'{"n": 1.0000000000000001}', 64, {"n": Decimal("1.0000000000000001")}),
    ("overflowing-number-exact", b'{"n": 1e400}', 64, {"n": Decimal("1e400")}),
    ("tiny-exponent-exact", b"[1e-400]", 64, [Decimal("1e-400")]),
    ("plain-numbers-stay-native", b'{"n": 1.5, "i": 7}', 64, {"n": 1.5, "i": 7}),
    ("exact-numbers-past-jiter-depth", nest(250, b"[1e400, 1.0000000000000001, " + HUGE_INT + b", 5]"), 10_000,
     nest_value(250, [Decimal("1e400"), Decimal("1.0000000000000001"), Decimal(HUGE_INT.decode()), Decimal(5)])),
    ("huge-integer-exact", b"[" + HUGE_INT + b', "\\u00e9"]', 64, [Decimal(HUGE_INT.decode()), "\u00e9"]),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted(case):
    _, body, max_depth, value = case
    result = ("ok", parse_json(body)) if max_depth is None else outcome(body, max_depth)
    assert result[0] == "ok", result
    if value is not None:
        assert result[1] == value
        assert [type(x) for x in _leaves(result[1])] == [type(x) for x in _leaves(value)]


def _leaves(value):
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


DEPTHS = [
    # id, body, max_depth, too deep
    ("short-body", b"[[[]]]", 2, True),
    ("shorter-than-the-limit", b"[[]]", 4, False),
    ("at-the-limit", nest(3), 3, False),
    ("past-the-limit", nest(4), 3, True),
    ("wide-but-shallow", b"[" + b"[1]," * 100 + b"[1]]", 2, False),
    ("brackets-in-strings", b'[["[[[[", "]]]]"]]', 2, False),
    ("escaped-quote-in-a-string", b'[["\\"[[[["]]', 2, False),
    ("unclosed-deep", b"[" * 10, 3, True),
    ("unclosed-shallow", b"[[" + b" " * 10, 3, False),
    ("unclosed-at-the-limit", b"[[", 2, False),
    ("strings-with-brackets-at-the-limit", b'[["[", 1], ["[", 1], ["[", 1]]', 2, False),
    ("strings-with-brackets-past-the-limit", b'[[["[", 1], ["[", 1]]]', 2, True),
]


@pytest.mark.parametrize("case", DEPTHS, ids=[c[0] for c in DEPTHS])
def test_too_deep(case):
    _, body, max_depth, expected = case
    assert too_deep(body, max_depth) is expected


NUMBERS = [
    # id, body, needs an exact parse (cases beyond tests/unit/contracts/test_exact_numbers.py)
    ("exponent-minus-300", b"[1e-300]", True),
    ("exponent-minus-299", b"[1e-299]", False),
    ("tiny-exponent-left-of-a-small-one", b"[1e-400, 1e-100]", True),
    ("tiny-exponent-between-small-ones", b"[1e-100, 1e-400, 1e-100]", True),
    ("small-exponents-only", b"[1e-100, 1e-200, 1e-299]", False),
    ("long-decimal-between-long-digit-strings", b'["4242424242424242", 1.0000000000000001, "4242424242424242"]', True),
    ("long-digit-strings-only", b'["4242424242424242", "4242424242424242"]', False),
    ("upper-exponent-sixteen-digit-mantissa", b"[1234567890123456E5]", True),
    ("sixteen-significant-digits-with-exponent", b"[1.234567890123456e5]", True),
    ("fifteen-significant-digits-with-exponent", b"[1.23456789012345e5]", False),
    ("negative-fifteen-significant-digits", b"[-1.23456789012345]", False),
    ("negative-sixteen-significant-digits", b"[-1.234567890123456]", True),
    ("sixteen-digit-integer", b"[1234567890123456]", False),
    ("twenty-digit-integer-2-to-the-64", b"[18446744073709551616]", True),
    ("nineteen-digit-negative-integer-past-i64", b"[-9223372036854775809]", True),
    ("eighteen-digit-negative-integer", b"[-922337203685477580]", False),
]


@pytest.mark.parametrize("case", NUMBERS, ids=[c[0] for c in NUMBERS])
def test_needs_exact(case):
    _, body, expected = case
    assert needs_exact(body) is expected
    numbers = [x for x in _leaves(parse_json(body)) if not isinstance(x, str)]
    # the exact parse has no doubles; orjson's (nothing needed it) no Decimals
    assert not any(isinstance(x, float if expected else Decimal) for x in numbers)
