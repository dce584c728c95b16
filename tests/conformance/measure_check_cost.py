"""Micro-measurement (run by hand, not a test): per-response check cost for ~1 KB and ~65 KB bodies.

    .venv/bin/python -m tests.conformance.measure_check_cost
"""

from __future__ import annotations

import json
import time

from .hotpath import operation_for


def _item_schema(fields: int) -> dict:
    props = {f"field_{i}": {"type": ["string", "integer", "boolean"][i % 3]} for i in range(fields)}
    props["created"] = {"type": "string", "format": "date-time"}
    return {"type": "object", "required": ["field_0", "field_1"], "properties": props}


def _item(fields: int, n: int) -> dict:
    kinds = [lambda i: f"value-{n}-{i}-" + "x" * 80, lambda i: n * 1000 + i, lambda i: i % 2 == 0]
    item = {f"field_{i}": kinds[i % 3](i) for i in range(fields)}
    item["created"] = "2024-05-01T10:00:00Z"
    return item


def _measure(op, body: bytes, *, drift: bool = False, rounds: int = 2000) -> float:
    op.check(200, "application/json", body, drift=drift)
    started = time.perf_counter()
    for _ in range(rounds):
        op.check(200, "application/json", body, drift=drift)
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    small_schema = _item_schema(22)
    small = json.dumps(_item(22, 1)).encode()
    big_schema = {"type": "object", "properties": {"data": {"type": "array", "items": _item_schema(40)}}}
    big = json.dumps({"data": [_item(40, n) for n in range(30)]}).encode()
    big_invalid = big.replace(b'"field_1": 1001', b'"field_1": "x"', 1)
    small_op, big_op = operation_for(small_schema), operation_for(big_schema)
    print(f"~1 KB body ({len(small)} B) valid:        {_measure(small_op, small):8.1f} µs/response")
    print(f"~1 KB body with drift:                {_measure(small_op, small, drift=True):8.1f} µs/response")
    print(f"~65 KB body ({len(big)} B) valid:      {_measure(big_op, big, rounds=300):8.1f} µs/response")
    print(f"~65 KB body invalid (1 violation):     {_measure(big_op, big_invalid, rounds=300):8.1f} µs/response")
    print(f"~65 KB body with drift:                {_measure(big_op, big, drift=True, rounds=300):8.1f} µs/response")


if __name__ == "__main__":
    main()
