"""The access line built in one dict (accesslog._line, when logs.direct()) is byte for byte the
line log_fast writes from access_fields: same fields, same order, same values."""

from __future__ import annotations


import orjson
import pytest

from egress.exchange import StreamFacts
from egress.observe import accesslog, logs

from .factories import denied, exchange, settings
from .test_log_batching import sink  # noqa: F401 (the fixture: a real stream owned by log_fast)


def _streamed():
    ex = exchange(settings("pay").upstreams[0], operation="GET /charges/{id}")
    ex.stream = StreamFacts("sse", first_byte_s=0.01, items=3, bytes=120, end="complete")
    return ex


def _long_method():
    ex = exchange(settings("pay").upstreams[0], status=502, reason="contract_violation")
    ex.method, ex.target_kind = "X" * 40, "proxy"
    ex.event("egress.contract_violation", keyword="minimum")
    ex.event("egress.credential_injected", anomaly=False, header="authorization")
    ex.event("egress.token_stripped", anomaly=False, where="header", name="authorization", kind="configured")
    return ex


CASES = [("normal", lambda: exchange(settings("pay").upstreams[0]), "GET /items/{id}"),
         ("denied", lambda: denied("evil.example"), ""), ("streamed", _streamed, "GET /charges/{id}"),
         ("long-method-events", _long_method, "X")]


@pytest.mark.parametrize("make, operation", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_direct_line_is_log_fast_line(sink, make, operation, monkeypatch):  # noqa: F811
    monkeypatch.setattr(logs, "now", lambda: "2026-12-01T20:00:00.000Z")
    monkeypatch.setattr(accesslog, "now", logs.now)
    monkeypatch.setattr(logs, "_timestamp", lambda t: "2026-12-01T20:00:00.000Z")
    ex = make()
    assert logs.direct()
    accesslog.write(ex, operation)                       # the direct path
    logs.log_fast(accesslog.MESSAGE, accesslog.access_fields(ex, operation))   # the reference
    logs.flush()
    direct_line, reference = b"".join(sink.writes).splitlines()
    assert direct_line == reference
    assert orjson.loads(direct_line)["msg"] == "access"


def test_not_direct_when_a_handler_listens(sink):  # noqa: F811
    import logging
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.fields)
    handler = Keep()
    logs.LOGGER.addHandler(handler)
    try:
        assert not logs.direct()
        accesslog.write(exchange(settings("pay").upstreams[0]), "GET /x")
    finally:
        logs.LOGGER.removeHandler(handler)
    assert sink.writes == [] and seen[0]["operation"] == "GET /x"


def test_fields_duration_in_whole_microseconds_and_events_once_each_sorted():
    ex = exchange(settings("pay").upstreams[0])
    ex.end_ns = ex.start_ns + 12_345_678  # 12.345678 ms: whole microseconds, in ms
    assert accesslog.access_fields(ex, "GET /x")["duration_ms"] == 12.345
    ex.end_ns = ex.start_ns - 5  # a clock step back: never negative
    assert accesslog.access_fields(ex, "GET /x")["duration_ms"] == 0
    assert accesslog.access_fields(ex, "GET /x")["events"] == []
    ex.event("egress.token_stripped", anomaly=False)
    ex.event("egress.credential_injected", anomaly=False)  # never an access-line event
    assert accesslog.access_fields(ex, "GET /x")["events"] == ["egress.token_stripped"]
    ex.event("egress.anomaly")
    ex.event("egress.token_stripped", anomaly=False)
    assert accesslog.access_fields(ex, "GET /x")["events"] == ["egress.anomaly", "egress.token_stripped"]
