"""One view over `--workers N`: add up the workers' /metrics texts and /admin/inventory
documents (pure functions; the aggregating parent in workers.py fetches them).

Metrics: counters, histograms and summaries add up sample by sample; a gauge takes the
most alarming worker's value (`GAUGE_MERGE`: max unless listed; a worker's local view of a
breaker or of the store is one view of the same thing, not a share of a total).
Inventory: counts add up, coverage is recomputed from the added matched counts, caller,
drift and denied lists merge under the same caps as one process's (inventory.py).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from egress.observe.inventory import MAX_CALLERS, MAX_DRIFT_FIELDS, TOP_DENIED

# gauge name -> how workers' values combine (default: max)
GAUGE_MERGE = {"egress_breaker_store_up": min}
_SEVERITY = {"open": 3, "half_open": 2, "closed": 1}


def merge_metrics(texts: list[str], *, workers: int, unreachable: int = 0) -> bytes:
    """The workers' Prometheus texts as one (plus `egress_workers{state}`)."""
    families: dict[str, tuple[str, str, dict]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            kind, doc, samples = families.setdefault(fam.name, (fam.type, fam.documentation, {}))
            combine = GAUGE_MERGE.get(fam.name, max) if kind == "gauge" else None
            for s in fam.samples:
                key = (s.name, tuple(s.labels.items()))
                if key not in samples:
                    samples[key] = s.value
                else:
                    samples[key] = combine(samples[key], s.value) if combine else samples[key] + s.value
    metrics = []
    for name, (kind, doc, samples) in families.items():
        metric = Metric(name, doc, kind)
        for (sample_name, labels), value in samples.items():
            metric.add_sample(sample_name, dict(labels), value)
        metrics.append(metric)
    gauge = Metric("egress_workers", "Worker processes behind this admin port, by state", "gauge")
    gauge.add_sample("egress_workers", {"state": "answering"}, float(workers - unreachable))
    gauge.add_sample("egress_workers", {"state": "unreachable"}, float(unreachable))
    metrics.append(gauge)

    class _Collector:
        def collect(self):
            return metrics

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry)


def _add(a: dict, b: dict, limit: int | None = None) -> dict:
    out = dict(a)
    for k, v in b.items():
        if k in out or limit is None or len(out) < limit:
            out[k] = out.get(k, 0) + v
        else:
            out["other"] = out.get("other", 0) + v
    return dict(sorted(out.items()))


def _later(a, b):
    return max(a or "", b or "") or None


def _merge_value(a, b):
    """Fields this module does not know (added by later issues): numbers and count maps add
    up, anything else keeps the first worker's value."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a + b
    if isinstance(a, dict) and isinstance(b, dict) and all(isinstance(v, (int, float)) for v in (*a.values(), *b.values())):
        return _add(a, b)
    return a


def _merge_operation(a: dict, b: dict) -> dict:
    out = {k: _merge_value(v, b.get(k)) if k in b else v for k, v in a.items()}
    out.update({k: v for k, v in b.items() if k not in a})
    out["matched_contract"] = bool(a.get("matched_contract") or b.get("matched_contract"))
    out["calls"] = a.get("calls", 0) + b.get("calls", 0)
    out["callers"] = _add(a.get("callers", {}), b.get("callers", {}), MAX_CALLERS)
    out["by_status_class"] = _add(a.get("by_status_class", {}), b.get("by_status_class", {}))
    out["drift_fields"] = sorted({*a.get("drift_fields", ()), *b.get("drift_fields", ())})[:MAX_DRIFT_FIELDS]
    out["last_seen"] = _later(a.get("last_seen"), b.get("last_seen")) or ""
    return out


def _matched(u: dict) -> int:
    if "matched_calls" in u:
        return u["matched_calls"]
    cov = u.get("contract_coverage")
    return round(cov * u.get("calls", 0)) if cov is not None else 0


def _merge_upstream(a: dict, b: dict) -> dict:
    out = {k: _merge_value(v, b.get(k)) if k in b else v for k, v in a.items()}
    out.update({k: v for k, v in b.items() if k not in a})
    calls = a.get("calls", 0) + b.get("calls", 0)
    out["calls"] = calls
    out["matched_calls"] = _matched(a) + _matched(b)
    out["contract_coverage"] = round((_matched(a) + _matched(b)) / calls, 4) if calls else None
    for key in ("by_status_class", "reasons", "violations_by_keyword"):
        out[key] = _add(a.get(key, {}), b.get(key, {}))
    breakers = dict(a.get("breakers", {}))
    for key, info in b.get("breakers", {}).items():  # the most severe view of each breaker
        if key not in breakers or _SEVERITY.get(info.get("state"), 0) > _SEVERITY.get(breakers[key].get("state"), 0):
            breakers[key] = info
    out["breakers"] = dict(sorted(breakers.items()))
    out["last_seen"] = _later(a.get("last_seen"), b.get("last_seen"))
    ops = {o["operation"]: o for o in a.get("operations", [])}
    for o in b.get("operations", []):
        ops[o["operation"]] = _merge_operation(ops[o["operation"]], o) if o["operation"] in ops else o
    out["operations"] = [ops[k] for k in sorted(ops)]
    return out


def merge_inventories(docs: list[dict], *, workers: int) -> dict:
    """The workers' /admin/inventory documents as one (plus `workers`)."""
    if not docs:
        return {"version": 1, "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "workers": workers, "upstreams": [], "denied_destinations": []}
    out = dict(docs[0])
    order: list[str] = []
    ups: dict[str, dict] = {}
    denied: dict[tuple, dict] = {}
    for doc in docs:
        for u in doc.get("upstreams", []):
            if u["name"] not in ups:
                order.append(u["name"])
                ups[u["name"]] = u
            else:
                ups[u["name"]] = _merge_upstream(ups[u["name"]], u)
        for d in doc.get("denied_destinations", []):
            key = (d.get("host"), d.get("via"), d.get("caller"))
            if key in denied:
                prev = denied[key]
                denied[key] = {**prev, "count": prev["count"] + d.get("count", 0),
                               "last_seen": _later(prev.get("last_seen"), d.get("last_seen")) or ""}
            else:
                denied[key] = dict(d)
    out["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out["workers"] = workers
    out["upstreams"] = [ups[name] for name in order]
    out["denied_destinations"] = sorted(denied.values(), key=lambda d: -d["count"])[:TOP_DENIED]
    return out
