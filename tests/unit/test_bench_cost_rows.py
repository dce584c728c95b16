"""The bench's rate-limit and SSE cost rows (bench/cost_rows.py, limits_cost.py, sse_cost.py), run with tiny n."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import cost_rows  # noqa: E402
import sse_cost  # noqa: E402

from tests.redis_server import REDIS_SERVER, SKIP_REASON  # noqa: E402

REDIS_ROWS = ("| rate-limit check (Redis), 3 buckets, CPU in egress |",
              "| rate-limit check (Redis), 3 buckets, wall µs |",
              "| rate-limit check (Redis): round trips per check | 1.00 |",
              "| redis-py PING (the client's floor) |")


def _value(text: str, row: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(row))
    return float(line.rsplit("|", 2)[1])


@pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)
def test_rate_limit_rows_measure_memory_and_a_real_redis():
    """limits_cost.py starts (and stops) its own redis-server; one EVALSHA per check, whatever the buckets."""
    limits = cost_rows.limit_rows(50, 1)
    memory, redis = limits["memory"], limits["redis"]
    assert memory["cpu_us_per_check"] > 0 and limits["buckets_per_check"] == 3
    assert redis["cpu_us_per_check"] > 0 and redis["wall_us_per_check"] > 0 and redis["redis_py_ping_cpu_us"] > 0
    assert redis["round_trips_per_check"] == pytest.approx(1.0, abs=0.01)
    assert cost_rows.limit_skips(limits) == {}
    text = "\n".join(cost_rows.render({"rate_limit": limits, "skipped": cost_rows.limit_skips(limits)}))
    assert _value(text, "| rate-limit check (memory), 3 buckets |") == round(memory["cpu_us_per_check"], 1)
    assert all(row in text for row in REDIS_ROWS)
    assert not [line for line in text.splitlines() if "rate-limit" in line and "skipped" in line]


def test_without_redis_server_the_redis_rows_say_why(tmp_path):
    """No redis-server on PATH: the memory row is measured, the Redis rows are a reason, never a number."""
    limits = cost_rows.limit_rows(50, 1, env={**os.environ, "PATH": str(tmp_path)})
    assert limits["memory"]["cpu_us_per_check"] > 0
    assert limits["redis"] == {"skipped": SKIP_REASON}
    skipped = cost_rows.limit_skips(limits)
    assert skipped == {"rate-limit check (Redis)": SKIP_REASON}
    text = "\n".join(cost_rows.render({"rate_limit": limits, "skipped": skipped}))
    assert f"| rate-limit check (Redis) | skipped: {SKIP_REASON} |" in text
    assert "| rate-limit check (memory), 3 buckets |" in text
    assert not any(row.split("|")[1] in text for row in REDIS_ROWS)


def test_a_failing_limits_run_is_a_skipped_row_with_its_reason(tmp_path):
    """The interpreter cannot start (PYTHONHOME points nowhere): the row is the failure's reason, not a crash."""
    limits = cost_rows.limit_rows(50, 1, env={"PATH": str(tmp_path), "PYTHONHOME": str(tmp_path)})
    assert set(limits) == {"skipped"} and limits["skipped"].startswith("limits_cost.py failed")
    assert list(cost_rows.limit_skips(limits)) == ["rate-limit check"]
    assert "| rate-limit check | skipped: limits_cost.py failed" in "\n".join(
        cost_rows.render({"rate_limit": limits, "skipped": cost_rows.limit_skips(limits)}))


def test_sse_rows_are_measured_on_events_that_pass():
    sse = cost_rows.sse_rows(20, 1)
    rows = sse["cpu_us_per_event"]
    assert set(rows) == {"framed only (mode off)", "framed + item checked (enforce)",
                         "framed + item checked (enforce), gzip-coded stream", "floor: orjson + jsonschema-rs"}
    assert all(us > 0 for us in rows.values())
    assert sse["refused"] == {name: reason for name, _, reason in sse_cost.REFUSED}
    text = "\n".join(cost_rows.render({"sse": sse}))
    assert _value(text, "| SSE per event (177 B chunk), framed + item checked (enforce) |") > 0
    assert ("| SSE enforce: refused events (object is not a chunk, data is not JSON) "
            "| contract_violation, invalid_json |") in text


REFUSED_CASES = [(name, coding, reason) for name, _, reason in sse_cost.REFUSED for coding in sse_cost.CODINGS]


@pytest.mark.parametrize("name, coding, reason", REFUSED_CASES,
                         ids=[f"{c[0]}, {c[1] or 'identity'}" for c in REFUSED_CASES])
def test_enforce_cuts_the_stream_at_a_violating_event(name, coding, reason):
    """Good, bad, good in one chunk: only the first good event goes out; the stream ends with the reason."""
    assert sse_cost.refused()[name, coding] == (reason, 1, len(sse_cost.streams.event(0)))


def test_events_that_fail_the_contract_give_no_number(monkeypatch):
    """A bench whose sample events violate the item schema refuses to report a per-event cost."""
    item = {**sse_cost.streams.ITEM, "required": ["id", "object", "choices", "usage"]}
    monkeypatch.setattr(sse_cost.streams, "ITEM", item)
    with pytest.raises(AssertionError, match="contract_violation"):
        sse_cost.rows(20, 1)


def test_a_failing_sse_harness_is_a_skipped_row_with_its_reason(monkeypatch):
    item = {**sse_cost.streams.ITEM, "required": ["id", "object", "choices", "usage"]}
    monkeypatch.setattr(sse_cost.streams, "ITEM", item)
    sse, skipped = cost_rows.sse_or_skip(20, 1)
    assert sse == {} and list(skipped) == ["SSE per event"]
    assert skipped["SSE per event"].startswith("not measured: ") and "contract_violation" in skipped["SSE per event"]
    text = "\n".join(cost_rows.render({"sse": sse, "skipped": skipped}))
    assert "| SSE per event | skipped: not measured: " in text and "SSE per event (177 B chunk)" not in text
