"""contracts/body.parse_json: every refusal with its reason, and the values it returns (named cases).

The reason is read from the BodyError message (the proxy turns every one into `invalid_json`,
with the message as the problem's detail): "duplicate", "deep", "utf8" or "json".
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from egress.contracts.body import BodyError, parse_json, too_deep


def nest(depth: int, inner: bytes = b"1", kind: str = "array") -> bytes:
    if kind == "array":
        return b"[" * depth + inner + b"]" * depth
    return b'{"a":' * depth + inner + b"}" * depth


def reason(message: str) -> str:
    for word, kind in (("duplicate", "duplicate"), ("nested", "deep"), ("UTF-8", "utf8"), ("JSON", "json")):
        if word in message:
            return kind
    raise AssertionError(f"unknown refusal: {message}")


def outcome(body: bytes, max_depth: int = 64):
    try:
        return "ok", parse_json(body, max_depth)
    except BodyError as exc:
        return "refused", reason(str(exc))


REFUSED = [
    # id, body, max_depth, reason
    ("duplicate-top-level", b'{"a": 1, "a": 2}', 64, "duplicate"),
    ("duplicate-first-value-hostile", b'{"amount": "evil", "amount": 5}', 64, "duplicate"),
    ("duplicate-at-depth-5", nest(4, b'{"k": 1, "k": 1}'), 64, "duplicate"),
    ("duplicate-in-second-array-item", b'[{"a": 1}, {"b": 1, "b": 2}]', 64, "duplicate"),
    ("duplicate-colons-in-strings", b'{"t": "12:30:00", "a": "x:y", "a": "z"}', 64, "duplicate"),
    ("duplicate-after-unicode-escape", b'{"a": 1, "\\u0061": 2}', 64, "duplicate"),
    ("duplicate-masked-by-escaped-colon", b'{"a": 1, "a": "\\u003a"}', 64, "duplicate"),
    ("duplicate-with-an-exact-number", b'{"n": 1.0000000000000001, "n": 2}', 64, "duplicate"),
    ("duplicate-in-a-body-300-deep", nest(299, b'{"a": 1, "a": 2}'), 10_000, "duplicate"),
    ("duplicate-past-jiter-depth-with-exact-number", nest(250, b'{"a": 1e-400, "a": 2}'), 10_000, "duplicate"),
    ("one-past-the-limit", nest(65), 64, "deep"),
    ("empty-array-one-past-the-limit", nest(64, b"[]"), 64, "deep"),
    ("empty-object-one-past-the-limit", nest(64, b"{}", "object"), 64, "deep"),
    ("objects-one-past-the-limit", nest(65, kind="object"), 64, "deep"),
    ("limit-of-one", b"[[1]]", 1, "deep"),
    ("limit-of-two-past-writer-depth", nest(300), 2, "deep"),
    ("past-orjson-writer-limit-and-ours", nest(400), 300, "deep"),
    ("bomb-100000-arrays", nest(100_000), 64, "deep"),
    ("bomb-100000-objects", nest(100_000, kind="object"), 64, "deep"),
    ("bomb-100000-unclosed", b"[" * 100_000, 64, "deep"),
    ("deep-and-duplicate-reports-depth", nest(70, b'{"a": 1, "a": 2}'), 64, "deep"),
    ("nan", b'{"n": NaN}', 64, "json"),
    ("infinity", b"[Infinity]", 64, "json"),
    ("minus-infinity", b"[-Infinity]", 64, "json"),
    ("nan-beside-an-overflowing-number", b"[1e400, NaN]", 64, "json"),
    ("invalid-utf8", b'{"id": "\xff\xfe"}', 64, "utf8"),
    ("lone-surrogate", b'{"id": "\\ud800"}', 64, "utf8"),
    ("lone-surrogate-beside-an-overflowing-number", b'["\\ud800", 1e400]', 64, "utf8"),
    ("trailing-garbage", b'{"a": 1} x', 64, "json"),
    ("trailing-garbage-after-an-overflowing-number", b"[1e400] x", 64, "json"),
    ("two-documents", b"[1][2]", 64, "json"),
    ("byte-order-mark-as-today", b'\xef\xbb\xbf{"a": 1}', 64, "utf8"),
    ("empty", b"", 64, "json"),
    ("truncated", b'{"a": ', 64, "json"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused(case):
    _, body, max_depth, why = case
    assert outcome(body, max_depth) == ("refused", why)


ACCEPTED = [
    # id, body, max_depth, the value it must return
    ("exactly-the-limit", nest(64), 64, None),
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
]


@pytest.mark.parametrize("case", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted(case):
    _, body, max_depth, value = case
    result = outcome(body, max_depth)
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
]


@pytest.mark.parametrize("case", DEPTHS, ids=[c[0] for c in DEPTHS])
def test_too_deep(case):
    _, body, max_depth, expected = case
    assert too_deep(body, max_depth) is expected
