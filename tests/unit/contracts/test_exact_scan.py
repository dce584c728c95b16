"""contracts/body.parse_json on hostile number text: a value or a BodyError with its reason, never
another exception (which the pipeline would answer as egress's own failure, a 502 in every mode).

Found by the fuzz test below: a string holding "1e-." crashed the exact-number scan (it read a
dot as an exponent's digit), and an exponent of thousands of digits crashed it (int() refuses
them) or the exact parse (a Decimal cannot hold the exponent).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.contracts import body as B
from egress.contracts.body import BodyError, needs_exact, parse_json


def over(alphabet: bytes, max_size: int = 300):
    """Byte strings drawn over `alphabet` (hypothesis shrinks them like any binary)."""
    table = bytes(alphabet[c % len(alphabet)] for c in range(256))
    return st.binary(max_size=max_size).map(lambda b: b.translate(table))


# -------------------------------------------------------------- hostile text: BodyError or a value
HOSTILE = [
    b'{"a": "1e-.123"}',                       # "e-" then a dot: a string's text, not an exponent
    b'["5e-..5"]',
    b"[1e-" + b"1" * 5000 + b"]",              # an exponent a Decimal cannot hold
    b'["1e-' + b"1" * 5000 + b'"]',            # the same digits in a string: more than int() reads
    b"[1e-" + b"0" * 5000 + b"1]",             # leading zeros: the exponent is -1
    b"[1" + b"0" * 5000 + b"]",
    b"[1" + b"0" * 5000 + b".5]",
    b"[-" + b"9" * 30 + b"e-" + b"9" * 20 + b"]",
]


@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_numbers_get_a_value_or_a_body_error(body):
    try:
        value = parse_json(body)
    except BodyError as exc:
        assert str(exc) in (B.NOT_JSON, B.NUMBER_RANGE, "JSON nested too deeply")
        return
    assert value is not None


def test_an_exponent_past_a_decimal_is_refused_with_its_reason():
    with pytest.raises(BodyError, match="^JSON number outside the range egress reads exactly$"):
        parse_json(b"[1e-" + b"1" * 5000 + b"]")
    assert parse_json(b"[1e-" + b"0" * 5000 + b"1]") == [Decimal("0.1")]
    assert parse_json(b'{"a": "1e-.123"}') == {"a": "1e-.123"}


@settings(max_examples=1500, deadline=None)
@given(over(b'0123456789.eE-+ "[]{},:a\\u', 200))
def test_parse_json_raises_only_body_errors(body):
    try:
        parse_json(body, 8)
    except BodyError:
        pass


@pytest.mark.parametrize("body, expected", [
    (b'["1e-.123"]', False), (b'["1e-0300"]', True), (b'["1e-299.9"]', False), (b'["1e-300x"]', True),
    (b'["1e-' + b"1" * 5000 + b'"]', True),
    (b"1e-400,1e-100", True)])  # (bytes, not one JSON value: the scan reads any) the first at offset 0
def test_a_negative_exponent_is_read_as_text(body, expected):
    """300 or more, whatever the number of digits or leading zeros; a dot ends the digits."""
    assert needs_exact(body) is expected


@pytest.mark.parametrize("digits, expected", [
    (b"300", True), (b"299", False), (b"0300", True), (b"0" * 5000 + b"300", True),
    (b"0" * 5000 + b"299", False), (b"0" * 5000, False), (b"1" * 5000, True), (b".300", False),
    (b"", False), (b"1000", True), (b"30", False)])
def test_the_exponent_digits_are_compared_as_text(digits, expected):
    assert B._exponent_from(b"1e-" + digits + b"]", 3) is expected
