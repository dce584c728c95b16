"""The Grafana dashboard only queries metrics that egress exports."""

import json
import re
from pathlib import Path

from egress.observe.metrics import COUNTERS, HISTOGRAMS

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy/grafana/egress-dashboard.json"


def test_dashboard_queries_known_metrics():
    doc = json.loads(DASHBOARD.read_text())
    known = {f"{n}_total" for n, _, _ in COUNTERS.values()}
    known |= {f"{n}_bucket" for n, _, _ in HISTOGRAMS.values()}
    known |= {"egress_breaker_state", "egress_breaker_store_up"}
    used = {m for p in doc["panels"] for t in p["targets"] for m in re.findall(r"egress_[a-z_]+", t["expr"])}
    assert used and used <= known, used - known
