"""The benchmark's report: CPU per request, the ratio to the floor, the cost rows (bench/)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench  # noqa: E402
import cost_rows  # noqa: E402
from procs import cpu_seconds  # noqa: E402


def _row(target, body, rps, cpu, floor):
    return {"target": target, "body": body, "rps": rps, "spread": 0.0, "p50_ms": 1.0, "p99_ms": 2.0,
            "vs_forwarder": None, "vs_prism": None, "errors": 0, "others_cores": 0.0, "cpu_us": cpu,
            "floor_us": floor, "vs_floor": cpu / floor if cpu and floor else None}


FLOOR_CASES = [
    # id, egress CPU us at 1.3 KB, floor, shown ratio, met
    ("under-the-target", 200.0, 150.0, "1.33x", "yes"),
    ("at-the-target", 240.0, 150.0, "1.60x", "yes"),
    ("over-the-target", 400.0, 150.0, "2.67x", "NO"),
]


@pytest.mark.parametrize("cpu, floor, shown, met", [c[1:] for c in FLOOR_CASES], ids=[c[0] for c in FLOOR_CASES])
def test_floor_ratio_row_and_target(cpu, floor, shown, met):
    o = {"throughput": {"egress|charge": _row("egress", "charge", 1000, cpu, floor),
                        "forwarder|charge": _row("forwarder", "charge", 2000, floor - 10, floor)},
         "cost_rows": {"floor_parse_validate_us": {"charge": 10.0}}}
    text = bench.render(o)
    assert f"| egress | 1.3 KB | 1,000 |" in text and f"| {cpu:.0f} | {shown} |" in text
    assert f"| 1.3 KB <= 1.6x the floor (CPU µs/req) | {shown} | {met} |" in text
    assert "1.3 KB 150 µs (parse+validate 10.0)" in text
    assert "| 65 KB <= 1.6x the floor (CPU µs/req) | n/a | n/a |" in text  # no 65 KB row: not a pass


def test_cpu_seconds_counts_this_process():
    before = cpu_seconds(os.getpid())
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.1


def test_cost_rows_contract_sizes_and_skipped_rows():
    rows = cost_rows.contract_rows(cost_rows.fixtures.bodies(), n=20, repeat=1)
    assert set(rows) == {"match+check, 1 op", f"match+check, {cost_rows.STRIPE_SIZED} ops"}
    assert all(0 < us < 100_000 for us in rows.values())
    text = "\n".join(cost_rows.render({"floor_parse_validate_us": {"charge": 5.0}, "contract_us": rows,
                                       "identity_us": "not run", "skipped": {"rate-limit check (Redis)": "no redis"}}))
    assert "| rate-limit check (Redis) | skipped: no redis |" in text
    assert "| identity | skipped: not run |" in text
