"""Adding up workers: metric samples and inventory documents (observe/aggregate.py)."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from egress.observe.aggregate import merge_inventories, merge_metrics

W1 = """# HELP egress_requests_total Exchanges handled
# TYPE egress_requests_total counter
egress_requests_total{upstream="pay",operation="GET /charges/{id}",status_class="2xx",outcome="ok"} 3.0
# HELP egress_request_duration_seconds Whole exchange
# TYPE egress_request_duration_seconds histogram
egress_request_duration_seconds_bucket{upstream="pay",le="0.1"} 2.0
egress_request_duration_seconds_bucket{upstream="pay",le="+Inf"} 3.0
egress_request_duration_seconds_sum{upstream="pay"} 0.5
egress_request_duration_seconds_count{upstream="pay"} 3.0
# HELP egress_breaker_store_up Shared breaker store reachable
# TYPE egress_breaker_store_up gauge
egress_breaker_store_up 1.0
# HELP egress_breaker_state Circuit breaker state
# TYPE egress_breaker_state gauge
egress_breaker_state{breaker="pay",state="open"} 0.0
"""
W2 = W1.replace("} 3.0", "} 5.0").replace("} 2.0", "} 1.0").replace("} 0.5", "} 1.25") \
    .replace("egress_breaker_store_up 1.0", "egress_breaker_store_up 0.0") \
    .replace('state="open"} 0.0', 'state="open"} 1.0')


def samples(text: bytes) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text.decode()) for s in fam.samples}


@pytest.mark.parametrize("name,labels,expected", [
    ("egress_requests_total", {"upstream": "pay", "operation": "GET /charges/{id}", "status_class": "2xx",
                               "outcome": "ok"}, 8.0),
    ("egress_request_duration_seconds_bucket", {"upstream": "pay", "le": "0.1"}, 3.0),
    ("egress_request_duration_seconds_bucket", {"upstream": "pay", "le": "+Inf"}, 8.0),
    ("egress_request_duration_seconds_sum", {"upstream": "pay"}, 1.75),
    ("egress_request_duration_seconds_count", {"upstream": "pay"}, 8.0),
    ("egress_breaker_store_up", {}, 0.0),                          # any worker without the store: 0
    ("egress_breaker_state", {"breaker": "pay", "state": "open"}, 1.0),  # any worker sees it open
    ("egress_workers", {"state": "answering"}, 2.0),
    ("egress_workers", {"state": "unreachable"}, 1.0),
], ids=["counter-adds", "bucket-adds", "inf-bucket-adds", "sum-adds", "count-adds", "store-up-is-min",
        "breaker-state-is-max", "workers-answering", "workers-unreachable"])
def test_merge_metrics(name, labels, expected):
    merged = samples(merge_metrics([W1, W2], workers=3, unreachable=1))
    assert merged[(name, tuple(sorted(labels.items())))] == expected


def _inv(calls, matched, caller, count, last, drift=(), breaker="closed", extra=None):
    return {"version": 1, "generated_at": last, "upstreams": [{
        "name": "pay", "configured": True, "calls": calls, "matched_calls": matched,
        "contract_coverage": round(matched / calls, 4), "by_status_class": {"2xx": calls},
        "reasons": {}, "violations_by_keyword": {"type": 1}, "breakers": {"pay": {"state": breaker}},
        "last_seen": last, **(extra or {}),
        "operations": [{"operation": "GET /charges/{id}", "matched_contract": True, "calls": calls,
                        "callers": {caller: calls}, "by_status_class": {"2xx": calls},
                        "drift_fields": list(drift), "last_seen": last}]}],
        "denied_destinations": [{"host": "evil", "via": "prefix", "caller": caller, "count": count,
                                 "last_seen": last}]}


def test_merge_inventories_adds_up():
    a = _inv(3, 3, "checkout", 2, "2026-01-01T00:00:01Z", drift=["/x"], extra={"suspended": 1})
    b = _inv(1, 0, "billing", 5, "2026-01-01T00:00:09Z", drift=["/y", "/x"], breaker="open",
             extra={"suspended": 2})
    b["denied_destinations"].append({"host": "evil", "via": "prefix", "caller": "checkout", "count": 1,
                                     "last_seen": "2026-01-01T00:00:05Z"})
    inv = merge_inventories([a, b], workers=2)
    [pay] = inv["upstreams"]
    assert inv["workers"] == 2
    assert pay["calls"] == 4 and pay["matched_calls"] == 3 and pay["contract_coverage"] == 0.75
    assert pay["by_status_class"] == {"2xx": 4} and pay["violations_by_keyword"] == {"type": 2}
    assert pay["breakers"]["pay"]["state"] == "open"          # the most severe view
    assert pay["last_seen"] == "2026-01-01T00:00:09Z"
    assert pay["suspended"] == 3                              # an unknown count adds up too
    [op] = pay["operations"]
    assert op["calls"] == 4 and op["callers"] == {"billing": 1, "checkout": 3}
    assert op["drift_fields"] == ["/x", "/y"]
    assert inv["denied_destinations"] == [
        {"host": "evil", "via": "prefix", "caller": "billing", "count": 5, "last_seen": "2026-01-01T00:00:09Z"},
        {"host": "evil", "via": "prefix", "caller": "checkout", "count": 3, "last_seen": "2026-01-01T00:00:05Z"},
    ]


def test_merge_inventories_of_no_worker_is_empty_not_an_error():
    inv = merge_inventories([], workers=2)
    assert inv["upstreams"] == [] and inv["denied_destinations"] == [] and inv["workers"] == 2
