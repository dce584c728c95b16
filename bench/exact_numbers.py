"""Cost of exact-number checking on the 65 KB bench body, side by side (ratios to orjson.loads).

    .venv/bin/python bench/exact_numbers.py [--rev 92b321f]

Rows: orjson.loads alone; `contracts.body.parse_json` of this tree; the same function at
`--rev` (read with `git show`, for the before/after comparison); the exact re-parse a body
takes when one number needs it (jiter, and the standard library with Decimals); and
parse_json of the body with one 17-digit decimal in it (the exact path end to end).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import timeit
import types
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/ itself: bench/bench.py would shadow the package
from bench.fixtures import bodies  # noqa: E402
from egress.contracts import body as current  # noqa: E402


def old_module(rev: str) -> types.ModuleType | None:
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:egress/contracts/body.py"],
                                check=True, capture_output=True, text=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    module = types.ModuleType("body_at_rev")
    exec(compile(source, f"{rev}:egress/contracts/body.py", "exec"), module.__dict__)
    return module


def per_call_us(fn, number: int) -> float:
    # CPU time of this process: wall time swings with the other tenants of a shared machine
    return min(timeit.repeat(fn, number=number, repeat=7, timer=time.process_time)) / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rev", default="92b321f")
    ap.add_argument("--number", type=int, default=300)
    args = ap.parse_args()
    plain = bodies()["list"]
    precise = plain.replace(b'"amount":', b'"amount":1.0000000000000001,"amount_x":', 1)
    old = old_module(args.rev)
    rows = [("orjson.loads (floor)", lambda: orjson.loads(plain)),
            ("parse_json, this tree", lambda: current.parse_json(plain))]
    if old is not None:
        rows.append((f"parse_json at {args.rev}", lambda: old.parse_json(plain)))
    rows += [("needs_exact alone", lambda: current.needs_exact(plain)),
             ("exact re-parse: jiter (Decimal)", lambda: current._exact(plain)),
             ("exact re-parse: json + Decimal", lambda: current._exact_stdlib(plain)),
             ("parse_json, one 17-digit decimal", lambda: current.parse_json(precise))]
    floor = per_call_us(rows[0][1], args.number)
    print(f"65 KB bench body ({len(plain)} bytes), {args.number} calls x 7, best run")
    for label, fn in rows:
        us = floor if fn is rows[0][1] else per_call_us(fn, args.number)
        print(f"  {label:36s} {us:8.1f} us   {us / floor:5.2f}x")


if __name__ == "__main__":
    main()
