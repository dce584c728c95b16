"""In-process cost rows: the floor of a validating proxy, and what the newer features cost.

    .venv/bin/python bench/cost_rows.py [--n 2000] [--repeat 5] [--json out.json]

Rows (best of --repeat runs, microseconds of this process's CPU per call):
  floor parse+validate   orjson.loads + jsonschema-rs is_valid of the bench bodies against the
                         bench schemas: what any validating proxy in Python pays per body on top
                         of forwarding it (bench.py adds the forwarder's CPU us/request to it)
  contract N ops         egress's own check of the same body (Operation.check: content type,
                         guarded parse, validation) in a 1-operation and a 468-operation contract
                         (Stripe's spec has ~468 operations): the cost must not grow with N
  identity               bench/identity_cost.py's rows (header vs JWT-verified caller stage)
  observer per exchange  egress.observe's Observability.observe (metrics, inventory, baselines, access
                         log line to a line-buffered file as stderr is) on an unsampled exchange,
                         and with its two spans built (a sampled one, the exporter a no-op)
  rate-limit check       bench/limits_cost.py's rows (a subprocess): Limiter.admit with 3 buckets
                         and a concurrency limit, memory store (CPU) and Redis store on a real
                         redis-server on loopback (CPU in egress, wall, round trips per check),
                         beside a bare redis-py PING (the client's floor); without redis-server
                         the Redis rows say why they were skipped
  SSE per event          bench/sse_cost.py's rows: the stream relay's own loop (read through
                         UpstreamStream, framed, item-checked) on streams.py's 177-byte
                         chat.completion.chunk events, mode off, enforce, and enforce on a
                         gzip-coded stream, beside orjson + jsonschema-rs per event; a violating
                         and a non-JSON event must be refused (checked outside the timing)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jsonschema_rs
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import fixtures  # noqa: E402
import sse_cost  # noqa: E402

from egress.contracts.loader import load_contract  # noqa: E402

STRIPE_SIZED = 468
CONCURRENT = 32  # exchanges finishing per event-loop iteration in the observer row (wrk -c32)


def cpu_us(fn, n: int, repeat: int) -> float:
    """Best of `repeat` runs of n calls: process CPU microseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n * 1e6)
    return best


def floor_validators() -> dict[str, object]:
    """jsonschema-rs validators for the two valid bodies, straight from the bench schemas."""
    sdir = fixtures.CONTRACTS / "schemas"
    docs = {f"https://bench.invalid/{p.name}": json.loads(p.read_text()) for p in sdir.glob("*.json")}
    registry = jsonschema_rs.Registry(list(docs.items()))

    def one(name: str):
        uri = f"https://bench.invalid/{name}"
        return jsonschema_rs.validator_for(docs[uri], registry=registry, base_uri=uri, validate_formats=True)
    return {"charge": one("charge.json"), "list": one("charge_list.json")}


def floor_rows(bodies: dict[str, bytes], n: int, repeat: int) -> dict[str, float]:
    """Parse + validate us per body: the in-process part of the floor."""
    rows = {}
    for name, validator in floor_validators().items():
        body = bodies[name]
        assert validator.is_valid(orjson.loads(body)), f"bench body {name} does not pass its own schema"
        k = n if len(body) < 10_000 else max(n // 20, 50)
        rows[name] = cpu_us(lambda b=body, v=validator: v.is_valid(orjson.loads(b)), k, repeat)
    return rows


def contract_rows(bodies: dict[str, bytes], n: int, repeat: int) -> dict[str, float]:
    """egress's check of the 1.3 KB body in a 1-operation and a 468-operation contract.

    The last operation declared is the one requested (a linear scan would pay the most there);
    the two contracts are measured in alternation, best of `repeat` each, so machine noise does
    not land on one of them only."""
    body, calls, rows = bodies["charge"], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in (1, STRIPE_SIZED):
            cdir = fixtures.many_operations_contract(Path(tmp) / f"c{count}", count)
            contract = load_contract(cdir / "many.yaml", contracts_dir=cdir)
            path = f"/r{count - 1}/charges/ch_1"
            op = contract.match("GET", path)
            assert op is not None, f"no operation matched in the {count}-operation contract"
            res = op.check(200, "application/json", body)
            assert res.outcome == "valid", (count, res.outcome, res.reason)
            calls[f"match+check, {count} op{'s' if count > 1 else ''}"] = (
                lambda c=contract, p=path: c.match("GET", p).check(200, "application/json", body))
    for _ in range(repeat):
        for name, fn in calls.items():
            rows[name] = min(rows.get(name, float("inf")), cpu_us(fn, n, 1))
    return rows


def observer_rows(n: int, repeat: int) -> dict[str, float]:
    """Observability.observe per exchange, as the pipeline calls it once per request."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    from egress.config import settings_from_dict
    from egress.exchange import Attempt, Exchange
    from egress.observe import logs
    from egress.observe.observe import Observability
    from egress.observe.tracecontext import new_span_id, new_trace_id

    class _Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    settings = settings_from_dict({"upstreams": [{"name": "pay", "url": "http://127.0.0.1:1/v1",
                                                  "allow_private_addresses": True}]}, base_dir=Path("."), environ={})
    up = settings.upstreams[0]

    def exchange() -> Exchange:
        ex = Exchange("GET", target_kind="prefix")
        ex.upstream, ex.caller, ex.path, ex.operation = up, "checkout", "/charges/ch_1", "GET /charges/{id}"
        ex.trace_id, ex.span_id, ex.contract = new_trace_id(), new_span_id(), "valid"
        a = Attempt(1, ex.start_ns, url="http://127.0.0.1:1/v1/charges/ch_1")
        a.end_ns, a.status = a.start_ns + 1_000_000, 200
        ex.attempts.append(a)
        ex.request_bytes, ex.response_bytes = 0, 1300
        ex.finish(200, None)
        return ex

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_Drop()))
    observers = {"unsampled": Observability(settings, environ={"OTEL_TRACES_SAMPLER": "always_off"}),
                 "2 spans built": Observability(settings, tracer_provider=provider,
                                                environ={"OTEL_TRACES_SAMPLER": "always_on"})}
    rows: dict[str, float] = {}
    saved = sys.stderr
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "access.log", "w", buffering=1) as sink:
        sys.stderr = sink
        try:
            logs.setup_logging("info")
            rows = asyncio.run(_observe_in_loop(observers, exchange, n, repeat))
        finally:
            sys.stderr = saved
            logs.setup_logging("info")
    return rows


async def _observe_in_loop(observers: dict, make, n: int, repeat: int) -> dict[str, float]:
    """On an event loop, CONCURRENT exchanges finishing per loop iteration (as under wrk -c32)."""
    from egress.observe import logs
    rows: dict[str, float] = {}
    rounds = max(n // CONCURRENT, 1)
    for _ in range(repeat):
        for name, obs in observers.items():
            batches = [[make() for _ in range(CONCURRENT)] for _ in range(rounds)]
            t0 = time.process_time()
            for batch in batches:
                for ex in batch:
                    obs.observe(ex)
                await asyncio.sleep(0)  # the loop's next iteration (the access log's write)
            us = (time.process_time() - t0) / (rounds * CONCURRENT) * 1e6
            key = f"observer per exchange, {name}"
            rows[key] = min(rows.get(key, float("inf")), us)
    getattr(logs, "flush", lambda: None)()  # (an older egress wrote each line at once)
    return rows


def identity_rows(n: int, repeat: int) -> dict[str, float] | str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "identity.json"
        done = subprocess.run([sys.executable, str(HERE / "identity_cost.py"), "--n", str(n), "--repeat", str(repeat),
                               "--json", str(out)], capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not out.exists():
            return f"identity_cost.py failed: {done.stderr.strip()[-200:]}"
        return json.loads(out.read_text())["us_cpu_per_request"]


def limit_rows(n: int, repeat: int, env: dict | None = None) -> dict:
    """bench/limits_cost.py's JSON (its "redis" member may be {"skipped": why}), or {"skipped": why it failed}."""
    try:
        done = subprocess.run([sys.executable, str(HERE / "limits_cost.py"), "--checks", str(n),
                               "--repeat", str(repeat)], capture_output=True, text=True, timeout=300, env=env)
        out = json.loads(done.stdout) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError) as exc:
        return {"skipped": f"limits_cost.py failed: {type(exc).__name__}"}
    return out if isinstance(out, dict) else {"skipped": f"limits_cost.py failed: {done.stderr.strip()[-200:]}"}


def limit_skips(limits: dict) -> dict[str, str]:
    """The rate-limit rows that could not run, with why."""
    if "skipped" in limits:
        return {"rate-limit check": limits["skipped"]}
    redis = limits.get("redis", {})
    return {"rate-limit check (Redis)": redis["skipped"]} if "skipped" in redis else {}


def sse_rows(n: int, repeat: int) -> dict:
    """bench/sse_cost.py's CPU µs per event (a stream of 10 x n events: an event costs a few µs, so
    the timed run stays well above the clock's noise) and, asserted first, the reasons its
    violating events were refused with."""
    refused = sse_cost.check_refused()
    return {"cpu_us_per_event": sse_cost.rows(10 * n, repeat), "refused": refused}


def sse_or_skip(n: int, repeat: int) -> tuple[dict, dict[str, str]]:
    """(sse_rows, {}) or, when a sample event fails or a violating one is not refused, ({}, why)."""
    try:
        return sse_rows(n, repeat), {}
    except AssertionError as exc:
        why = " ".join(str(exc).replace("|", "/").split())[:300]
        return {}, {"SSE per event": f"not measured: {why}"}


def measure(n: int = 2000, repeat: int = 5) -> dict:
    bodies = fixtures.bodies()
    limits = limit_rows(n, repeat)
    sse, sse_skips = sse_or_skip(n, repeat)
    skipped = {**limit_skips(limits), **sse_skips}
    return {"floor_parse_validate_us": floor_rows(bodies, n, repeat),
            "contract_us": contract_rows(bodies, n, repeat),
            "observer_us": observer_rows(n, repeat),
            "identity_us": identity_rows(n, repeat),
            "rate_limit": limits, "sse": sse, "skipped": skipped, "body_bytes": {k: len(v) for k, v in bodies.items()}}


def render(rows: dict) -> list[str]:
    lines = ["| cost row (in-process, CPU µs per call unless it says otherwise) | µs |", "| --- | --: |"]
    for body, us in rows.get("floor_parse_validate_us", {}).items():
        lines.append(f"| floor: orjson parse + jsonschema-rs validate, {fixtures_label(body)} | {us:.1f} |")
    for name, us in rows.get("contract_us", {}).items():
        lines.append(f"| contract {name} (1.3 KB body) | {us:.1f} |")
    for name, us in rows.get("observer_us", {}).items():
        lines.append(f"| {name} | {us:.1f} |")
    ident = rows.get("identity_us", "not measured")
    if isinstance(ident, dict):
        for name, us in ident.items():
            lines.append(f"| identity: {name} | {us:.1f} |")
    else:
        lines.append(f"| identity | skipped: {ident} |")
    lines += limit_lines(rows.get("rate_limit", {}))
    sse = rows.get("sse", {})
    for name, us in sse.get("cpu_us_per_event", {}).items():
        lines.append(f"| SSE per event (177 B chunk), {name} | {us:.1f} |")
    if sse.get("refused"):
        lines.append(f"| SSE enforce: refused events ({', '.join(sse['refused'])}) | "
                     f"{', '.join(sse['refused'].values())} |")
    for name, why in rows.get("skipped", {}).items():
        lines.append(f"| {name} | skipped: {why} |")
    return lines


def limit_lines(limits: dict) -> list[str]:
    """The rate-limit rows of limits_cost.py's JSON (none for a skipped store: `skipped` says why)."""
    lines, n = [], limits.get("buckets_per_check", 3)
    memory, redis = limits.get("memory", {}), limits.get("redis", {})
    if "cpu_us_per_check" in memory:
        lines.append(f"| rate-limit check (memory), {n} buckets | {memory['cpu_us_per_check']:.1f} |")
    if "cpu_us_per_check" in redis:
        lines += [f"| rate-limit check (Redis), {n} buckets, CPU in egress | {redis['cpu_us_per_check']:.1f} |",
                  f"| rate-limit check (Redis), {n} buckets, wall µs | {redis['wall_us_per_check']:.1f} |",
                  f"| rate-limit check (Redis): round trips per check | {redis['round_trips_per_check']:.2f} |",
                  f"| redis-py PING (the client's floor) | {redis['redis_py_ping_cpu_us']:.1f} |"]
    return lines


def fixtures_label(body: str) -> str:
    return {"charge": "1.3 KB", "list": "65 KB"}.get(body, body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rows = measure(args.n, args.repeat)
    print("\n".join(render(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
