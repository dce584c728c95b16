"""Metrics.observe keeps label tuples and histograms it computed once (a vocabulary's answer
for a value never changes); the text it renders must be what computing them every time gives,
over the vocabularies' limits too (`other`)."""

from __future__ import annotations

from egress.exchange import StreamFacts
from egress.observe import metrics as metrics_mod
from egress.observe.metrics import Metrics, status_class

from .factories import denied, exchange, settings


def reference_observe(m: Metrics, ex, operation: str) -> None:
    """Metrics.observe as it was before the memo: every label computed for every exchange."""
    up = ex.upstream_name
    outcome = m._reasons(ex.reason) if ex.reason else "ok"
    m.inc("requests", (up, operation, status_class(ex.status), outcome))
    m._hist("request_duration", (up,)).observe(ex.duration_s)
    if ex.attempts:
        h = m._hist("attempt_duration", (up,))
        for a in ex.attempts:
            if a.end_ns:
                h.observe(max(0, a.end_ns - a.start_ns) / 1e9)
    stream = ex.stream
    if stream is not None:
        m.inc("streams", (up, m._reasons(stream.end)))
        m.inc("stream_items", (up,), stream.items)
        m.inc("stream_bytes", (up,), stream.bytes)
        if stream.first_byte_s is not None:
            m._hist("stream_first_byte", (up,)).observe(stream.first_byte_s)
    for e in ex.events:
        name = e.name
        m.inc("events", (up, m._names(name)))
        if name in ("egress.token_stripped", "egress.internal_token_in_body"):
            m.inc("tokens", (m._names(e.attrs.get("where")), m._names(e.attrs.get("kind"))))
        elif name == "egress.contract_violation":
            m.inc("violations", (up, m._keywords(e.attrs.get("keyword") or "unknown")))
        elif name == "egress.retry":
            m.inc("retries", (up,))
        elif name == "egress.anomaly":
            m.inc("anomalies", (up, m._names(e.attrs.get("kind"))))


def exchanges():
    pay, maps = settings("pay", "maps").upstreams
    out = []
    for i in range(600):
        up = (pay, maps, None)[i % 3]
        reason = None if i % 4 else f"reason_{i}"          # 150 reasons: over the 100 limit
        ex = denied(f"h{i}.example") if up is None else exchange(
            up, status=(200, 404, 502, 503)[i % 4], reason=reason, attempts=1 + i % 2)
        if up is not None and i % 5 == 0:
            ex.attempts[-1].end_ns = 0                              # an attempt that never ended
        ex.event("egress.token_stripped", anomaly=False, where=("header", "query", None)[i % 3],
                 kind=f"kind_{i % 130}" if i % 7 else 7)           # odd kinds, a non-str kind, over the limit
        ex.event(f"egress.custom_{i % 120}", anomaly=False)         # event names over the limit
        ex.event("egress.contract_violation", keyword=f"kw_{i % 110}" if i % 2 else None)
        ex.event("egress.retry", cause="status:503")
        ex.event("egress.anomaly", kind=("latency", "size", "status")[i % 3])
        if i % 6 == 0 and up is not None:
            ex.stream = StreamFacts("sse", first_byte_s=0.01 * (i % 4) if i % 12 else None, items=i, bytes=10 * i,
                                    end=("complete", "caller_gone", f"cut_{i % 9}")[i % 3])
        out.append((ex, "" if up is None else f"GET /op/{i % 250}"))
    return out


def test_memoized_observe_renders_what_computing_every_label_renders(monkeypatch):
    monkeypatch.setattr(metrics_mod, "MEMO_SIZE", 50)   # the memo fills up too: both regimes
    fast, slow = Metrics(), Metrics()
    for ex, op in exchanges():
        fast.observe(ex, op)
        reference_observe(slow, ex, op)
    assert fast.counters == slow.counters
    assert {k: {lbl: (h.counts, h.sum) for lbl, h in d.items()} for k, d in fast.histograms.items()} == \
        {k: {lbl: (h.counts, h.sum) for lbl, h in d.items()} for k, d in slow.histograms.items()}
    assert fast.render() == slow.render()
    assert any(lbl[1] == "other" for lbl in fast.counters["tokens"])
    assert any(lbl[3] == "other" for lbl in fast.counters["requests"])


def test_no_attempt_histogram_for_an_upstream_without_attempts():
    m = Metrics()
    m.observe(denied("x.example"), "")
    pay = settings("pay").upstreams[0]
    m.observe(exchange(pay, attempts=0), "GET /x")
    assert m.histograms["attempt_duration"] == {}
    m.observe(exchange(pay), "GET /x")
    assert list(m.histograms["attempt_duration"]) == [("pay",)]


def test_status_class_table_is_the_formula():
    """The table lookup (ints) gives what the formula gives, in range, at its edges and beyond."""
    for status in [None, 0, True, False, 200.0, 99.5, *range(-5, 700)]:
        assert status_class(status) == metrics_mod._status_class(status), status
    assert (status_class(200), status_class(599), status_class(600), status_class(99), status_class(None)) == \
        ("2xx", "5xx", "none", "none", "none")
    assert status_class(200.0) == "2.0xx"   # not an int: formatted, as before the table
