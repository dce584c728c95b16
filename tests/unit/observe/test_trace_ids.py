"""observe/tracecontext: new ids are W3C trace-context ids (32 / 16 lowercase hex digits, never
all zero), written as f"{n:032x}" would write them."""

from __future__ import annotations

import re

import pytest

from egress.observe import tracecontext


@pytest.mark.parametrize("make, digits, bits", [(tracecontext.new_trace_id, 32, 128),
                                                (tracecontext.new_span_id, 16, 64)])
def test_ids_are_lowercase_hex_of_their_width_and_never_zero(monkeypatch, make, digits, bits):
    seen = {make() for _ in range(2000)}
    assert len(seen) == 2000 and all(re.fullmatch(f"[0-9a-f]{{{digits}}}", i) for i in seen)
    for n in (0, 1, 0xABC, (1 << bits) - 1, 1 << (bits - 1)):
        monkeypatch.setattr(tracecontext._rand, "getrandbits", lambda k, n=n: n)
        assert make() == f"{n or 1:0{digits}x}"
    monkeypatch.undo()
    assert tracecontext.parse_traceparent(f"00-{tracecontext.new_trace_id()}-{tracecontext.new_span_id()}-01")
