"""contracts/body.needs_exact: which bodies orjson would read inexactly (named cases)."""

from __future__ import annotations

import pytest

from egress.contracts.body import needs_exact, parse_json

CASES = [
    ("short-integer", b'{"n": 5}', False),
    ("fifteen-significant-digits", b'{"n": 1.23456789012345}', False),
    ("sixteen-significant-digits", b'{"n": 1.000000000000001}', True),
    ("one-point-sixteen-zeros-one", b'{"n": 1.0000000000000001}', True),
    ("leading-zeros-do-not-count", b'{"n": 0.000000000000000012345}', False),
    ("nineteen-digit-integer-fits-u64", b'{"n": 9999999999999999999}', False),
    ("negative-nineteen-digits-past-i64", b'{"n": -9999999999999999999}', True),
    ("twenty-digit-integer", b'{"n": 123456789012345678901}', True),
    ("sixteen-digit-mantissa-with-exponent", b'{"n": 1234567890123456e5}', True),
    ("exponent-minus-400", b'{"n": 1e-400}', True),
    ("exponent-minus-30", b'{"n": 1e-30}', False),
    ("phone-number-in-a-string", b'{"tel": "555-1234"}', False),
    ("uuid-in-a-string", b'{"id": "550e8400-e29b-41d4-a716-446655440000"}', False),
    ("long-digits-in-a-string-are-read-exactly-too", b'{"card": "4242424242424242.4242"}', True),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_needs_exact(case):
    _, body, expected = case
    assert needs_exact(body) is expected
    parse_json(body)  # never raises on valid JSON, whichever path it takes
