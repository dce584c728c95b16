"""Streams side by side: N concurrent SSE streams x M events, direct vs through egress, RSS sampled.

    .venv/bin/python bench/streams.py                      # 100 streams x 10,000 events (enforce, item schema)
    .venv/bin/python bench/streams.py --streams 10 --events 1000 --mode off

Processes (each in its own session, stopped by its own id): a fake SSE provider (bench/streams.py
--serve, aiohttp, writing OpenAI-style chat.completion.chunk events as fast as the reader takes
them, `--per-write` events per write) and `egress serve` with one upstream whose contract declares
`item_schema` for `text/event-stream`.  The load generator is this process (aiohttp client).
First, one paced stream (an event every 20 ms, its send time inside): how long after the provider
sent it each event reaches the caller, direct and through egress.  Then the load.
Reported: events/s and MB/s direct and through egress (ratio), time to first event (p50/p99), the
egress process's RSS before, peak and after (sampled every 0.25 s), and RSS at 10% vs 100% of the
run: flat RSS means memory per stream is bounded by one event, not by the stream's length.
Results: stdout and bench/results/streams.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import Processes, free_port, rss_mb, wait_http  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EGRESS = REPO / ".venv" / "bin" / "egress"
PY = REPO / ".venv" / "bin" / "python"
ITEM = {"type": "object", "required": ["id", "object", "choices"],
        "properties": {"id": {"type": "string"}, "object": {"const": "chat.completion.chunk"},
                       "created": {"type": "integer"}, "model": {"type": "string"},
                       "choices": {"type": "array", "items": {"type": "object", "required": ["index", "delta"]}}}}


def event(i: int, sent: float = 0.0) -> bytes:
    return b"data: " + orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-x",
        "choices": [{"index": 0, "delta": {"content": f"token {i} "}, "finish_reason": None}],
        **({"sent": sent} if sent else {})}) + b"\n\n"


async def paced_lags(url: str, events: int, interval: float) -> dict:
    """One stream, one event every `interval` s: how long after its send each event arrives."""
    import aiohttp

    lags, buf = [], b""
    async with aiohttp.ClientSession() as session:
        async with session.post(url, params={"events": str(events), "interval": str(interval)},
                                headers={"X-Egress-Caller": "bench"}) as resp:
            async for data in resp.content.iter_any():
                now = time.time()
                buf += data
                while b"\n\n" in buf:
                    one, buf = buf.split(b"\n\n", 1)
                    if one.startswith(b"data: {"):
                        lags.append((now - orjson.loads(one[6:])["sent"]) * 1000)
    lags.sort()
    return {"events": len(lags), "lag_p50_ms": round(statistics.median(lags), 2),
            "lag_p99_ms": round(lags[int(0.99 * (len(lags) - 1))], 2), "lag_max_ms": round(lags[-1], 2)}


# ------------------------------------------------------------------ the fake provider (--serve)
def serve(port: int) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.StreamResponse:
        n = int(request.query.get("events", "1000"))
        per = int(request.query.get("per_write", "10"))
        interval = float(request.query.get("interval", "0"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if interval:  # paced: one event per write, its send time (wall clock) inside
            for i in range(n):
                await asyncio.sleep(interval)
                await resp.write(event(i, sent=time.time()))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        batch = [event(i) for i in range(per)]
        blob = b"".join(batch)
        sent = 0
        while sent < n:
            k = min(per, n - sent)
            await resp.write(blob if k == per else b"".join(batch[:k]))
            sent += k
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ------------------------------------------------------------------ the load generator
async def one_stream(session, url: str, events: int, per_write: int, firsts: list[float]) -> tuple[int, int, bool]:
    import aiohttp

    started = time.monotonic()
    seen, nbytes, tail, last = 0, 0, b"", b""
    async with session.post(url, params={"events": str(events), "per_write": str(per_write)},
                            headers={"X-Egress-Caller": "bench"}, json={"stream": True},
                            timeout=aiohttp.ClientTimeout(total=None)) as resp:
        assert resp.status == 200, resp.status
        async for chunk in resp.content.iter_any():
            if not seen and chunk:
                firsts.append(time.monotonic() - started)
            seen += (tail + chunk).count(b"\n\n")  # a TCP segment may split the blank line
            tail = chunk[-1:]
            last = (last + chunk)[-64:]
            nbytes += len(chunk)
    return seen, nbytes, last.endswith(b"data: [DONE]\n\n")


async def run_load(url: str, streams: int, events: int, per_write: int, pid: int | None) -> dict:
    import aiohttp

    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            if pid is not None:
                samples.append((time.monotonic(), rss_mb(pid)))
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
            except TimeoutError:
                pass

    firsts: list[float] = []
    before = rss_mb(pid) if pid is not None else None
    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        results = await asyncio.gather(*(one_stream(session, url, events, per_write, firsts)
                                         for _ in range(streams)))
    elapsed = time.monotonic() - started
    stop.set()
    await sampler
    total_events = sum(r[0] for r in results)
    total_bytes = sum(r[1] for r in results)
    cut = sum(1 for r in results if not r[2])
    out = {"elapsed_s": round(elapsed, 2), "events": total_events, "streams_not_completed": cut, "events_per_s": round(total_events / elapsed),
           "mb_per_s": round(total_bytes / elapsed / 1e6, 1),
           "first_event_p50_ms": round(statistics.median(firsts) * 1000, 1),
           "first_event_p99_ms": round(sorted(firsts)[int(0.99 * (len(firsts) - 1))] * 1000, 1)}
    if pid is not None and samples:
        rss = [r for _, r in samples]
        t0, t1 = samples[0][0], samples[-1][0]
        early = [r for t, r in samples if t <= t0 + 0.1 * (t1 - t0)] or rss[:1]
        half = [r for t, r in samples if t <= t0 + 0.5 * (t1 - t0)] or rss[:1]
        out.update(rss_before_mb=round(before, 1), rss_peak_mb=round(max(rss), 1),
                   rss_at_10pct_mb=round(max(early), 1), rss_at_50pct_mb=round(max(half), 1),
                   rss_at_end_mb=round(rss[-1], 1),
                   rss_after_mb=round(rss_mb(pid), 1), rss_samples=len(rss))
    return out


def egress_config(path: Path, port: int, admin: int, provider_port: int, mode: str) -> Path:
    contracts = path.parent / "contracts"
    contracts.mkdir(exist_ok=True)
    ops = {"POST /chat/completions": {"responses": {"200": {"content_type": "text/event-stream",
                                                            "item_schema": ITEM}}}}
    (contracts / "llm.yaml").write_text(yaml.safe_dump({"operations": ops}))
    doc = {"listen": f"127.0.0.1:{port}", "admin_listen": f"127.0.0.1:{admin}", "contracts_dir": "contracts",
           "upstreams": [{"name": "llm", "url": f"http://127.0.0.1:{provider_port}/v1", "callers": ["*"],
                          "allow_private_addresses": True, "contract": "llm.yaml", "mode": mode,
                          "retry": {"attempts": 1},
                          "limits": {"max_response_bytes": 1 << 40, "max_decompressed_bytes": 1 << 40}}]}
    path.write_text(yaml.safe_dump(doc))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--per-write", type=int, default=10, help="events per provider write")
    ap.add_argument("--mode", default="enforce", choices=["enforce", "report", "off"])
    ap.add_argument("--out", default=str(HERE / "results" / "streams.json"))
    ap.add_argument("--keep", action="store_true", help="keep the work dir (config, logs)")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    work = Path(tempfile.mkdtemp(prefix="egress-streams-"))
    procs = Processes(work)
    try:
        pport, eport, aport = free_port(), free_port(), free_port()
        provider = procs.start("provider", [str(PY), str(Path(__file__).resolve()), "--serve", str(pport)])
        wait_http(f"http://127.0.0.1:{pport}/", 20, provider)
        cfg = egress_config(work / "egress.yaml", eport, aport, pport, args.mode)
        egress = procs.start("egress", [str(EGRESS), "serve", "--config", str(cfg), "--workers", "1"], cwd=work)
        wait_http(f"http://127.0.0.1:{aport}/healthz", 30, egress)
        shape = dict(streams=args.streams, events=args.events, per_write=args.per_write)
        paced = {"direct": asyncio.run(paced_lags(f"http://127.0.0.1:{pport}/v1/chat/completions", 100, 0.02)),
                 "egress": asyncio.run(paced_lags(f"http://127.0.0.1:{eport}/llm/chat/completions", 100, 0.02))}
        direct = asyncio.run(run_load(f"http://127.0.0.1:{pport}/v1/chat/completions", pid=None, **shape))
        through = asyncio.run(run_load(f"http://127.0.0.1:{eport}/llm/chat/completions", pid=egress.pid, **shape))
        result = {"shape": {**shape, "mode": args.mode, "event_bytes": len(event(1))},
                  "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
                  "paced_1_stream_100_events_every_20ms": paced, "direct": direct,
                  "egress": through, "ratio_events_per_s": round(through["events_per_s"] / direct["events_per_s"], 3)}
        print(json.dumps(result, indent=2))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    finally:
        procs.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
