"""Instructions per request, counted by valgrind (callgrind): the bench's noise-free ratios.

CPU µs per request moves 15-45 % between rounds on a shared VM (docs/performance.md); an
instruction count does not: callgrind counts the instructions the process executes, the same
total (to ~0.1 %) whatever else the machine does.  So a cut of 1 % shows here, where the
throughput rows cannot see it.  What it does not count: system calls' kernel time, cache misses
and the time the GIL waits; the CPU rows stay the measure of speed, this one of work.

Each target runs alone under `valgrind --tool=callgrind --instr-atstart=no` behind the bench's
provider, gets a warm-up, then counting is switched on (`callgrind_control -i on`) for exactly N
requests from a fixed-count client (8 keep-alive connections, every answer must be 200), and
the total is dumped.  Targets (the ablation's): forwarder, floor-proxy (forwarder + orjson +
jsonschema-rs on every body: the floor as a running proxy), flat (egress's checks with no
scaffolding), egress-quiet (no access log, no traces), egress (access log at info, 10 % sampled
spans exported; sampling makes it move ~1 %).

    bench/run --only instructions                  # in a bench run (Bench.instructions)
    .venv/bin/python bench/instructions.py --n 1600 --target a=/path/to/worktree --target b=/other
        # A/B of two source trees (each tree's egress package is imported first), egress-quiet
        # and (--obs) egress, on this machine's nginx provider
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fixtures  # noqa: E402
from procs import Processes, free_port, free_port_pair, wait_http  # noqa: E402

TARGETS = ("forwarder", "floor-proxy", "flat", "egress-quiet", "egress")
CONNECTIONS = 8
_CLIENT = """
import asyncio, sys, aiohttp, json
url, n, conns, headers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
async def main():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns)) as s:
        async def worker(k):
            for _ in range(k):
                async with s.get(url, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        sys.exit(f"status {r.status} from {url}")
        await asyncio.gather(*(worker(n // conns + (i < n % conns)) for i in range(conns)))
asyncio.run(main())
"""


def available() -> str | None:
    """None when valgrind and callgrind_control are here, else why not."""
    missing = [t for t in ("valgrind", "callgrind_control") if shutil.which(t) is None]
    return f"not installed: {', '.join(missing)}" if missing else None


def totals(out_prefix: Path) -> int:
    """The largest `totals:`/`summary:` line over callgrind's dump files for this run."""
    best = 0
    for path in glob.glob(f"{out_prefix}*"):
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith(("totals:", "summary:")):
                    best = max(best, int(line.split()[1]))
    return best


def thread_totals(out_prefix: Path) -> dict[int, int]:
    """With `--separate-threads=yes`: each thread's largest `totals:`/`summary:` line (callgrind
    names a thread's dump files `PREFIX[.N]-TT`, TT the thread's number; 1 is the main thread)."""
    best: dict[int, int] = {}
    for path in glob.glob(f"{out_prefix}*"):
        m = re.search(r"-(\d+)$", path)
        if m is None:
            continue
        thread = int(m.group(1))
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith(("totals:", "summary:")):
                    best[thread] = max(best.get(thread, 0), int(line.split()[1]))
    return best


def send(python: str, url: str, n: int, headers: dict, cpus: str | None) -> None:
    import json
    cmd = [python, "-c", _CLIENT, url, str(n), str(CONNECTIONS), json.dumps(headers)]
    subprocess.run((["taskset", "-c", cpus] if cpus else []) + cmd, check=True, timeout=900,
                   capture_output=True, text=True)


def count(procs: Processes, name: str, argv: list[str], url: str, *, n: int, headers: dict, python: str,
          env: dict | None = None, proxy_cpus: str | None = None, load_cpus: str | None = None,
          warm: int = 300, threads: dict[int, float] | None = None) -> float:
    """Instructions per request of the process `argv` serving `url`, over exactly `n` requests.
    `threads` (a dict to fill): counted per thread as well (thread number -> instructions per
    request; 1 is the event loop's, others are the span exporter's and the like); the total is
    their sum, as an unseparated count would be."""
    out = Path(tempfile.mkdtemp(prefix=f"callgrind-{name}-")) / "callgrind.out"
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
          "--dump-instr=no", "--compress-strings=no", *(["--separate-threads=yes"] if threads is not None else [])]
    measure = (lambda: sum(thread_totals(out).values())) if threads is not None else (lambda: totals(out))
    # cwd: a directory with no egress/ in it. `python -m egress` puts the working directory first
    # on sys.path, so started from a checkout it would measure that checkout's egress, not the
    # tree PYTHONPATH names (an A/B of two trees would then count one tree twice).
    p = procs.start(name, vg + argv, cpus=proxy_cpus, env=env, cwd=out.parent)
    try:
        wait_http(url, 300, p)
        send(python, url, warm, headers, load_cpus)
        for args in (["-i", "on"], None, ["-i", "off"], ["-d"]):
            if args is None:
                send(python, url, n, headers, load_cpus)
                continue
            subprocess.run(["callgrind_control", *args, str(p.pid)], check=True, capture_output=True, timeout=120)
        deadline = time.monotonic() + 30
        while (total := measure()) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)  # the dump is written by the target, after callgrind_control returns
    finally:
        procs.stop(name, grace=30)
    if total == 0:
        raise RuntimeError(f"callgrind wrote no totals for {name}")
    if threads is not None:
        threads.update({t: c / n for t, c in sorted(thread_totals(out).items()) if c})
    shutil.rmtree(out.parent, ignore_errors=True)
    return total / n


def ratios(counts: dict[str, float]) -> dict[str, float]:
    """The rows the table shows (absent targets give absent rows)."""
    out = {}
    pairs = {"egress / floor-proxy": ("egress", "floor-proxy"), "egress-quiet / floor-proxy": ("egress-quiet", "floor-proxy"),
             "flat / floor-proxy": ("flat", "floor-proxy"), "floor-proxy / forwarder": ("floor-proxy", "forwarder"),
             "egress / forwarder": ("egress", "forwarder")}
    for label, (a, b) in pairs.items():
        if a in counts and b in counts and counts[b] > 0:
            out[label] = round(counts[a] / counts[b], 3)
    diffs = {"scaffolding (egress-quiet - flat)": ("egress-quiet", "flat"),
             "access log + spans (egress - egress-quiet)": ("egress", "egress-quiet"),
             "checks beyond the floor (flat - floor-proxy)": ("flat", "floor-proxy")}
    for label, (a, b) in diffs.items():
        if a in counts and b in counts:
            out[label] = round(counts[a] - counts[b], 1)
    return out


#: the accounting's experiments: each piece taken out alone (flat.py's FLAT_WITHOUT, ablate.py's PIECES)
FLAT_PIECES = ("route", "identity", "sanitize", "match", "check", "guarded", "timeout", "answer")
EGRESS_PIECES = ("limits", "resilience", "metrics", "inventory", "baselines", "observe")


def accounting_targets() -> list[str]:
    return (["forwarder", "floor-proxy", "flat"] + [f"flat-no-{p}" for p in FLAT_PIECES]
            + ["egress-quiet"] + [f"egress-no-{p}" for p in EGRESS_PIECES])


def accounting(counts: dict[str, float]) -> list[tuple[str, str, float]]:
    """(part, piece, k instructions) rows: what each piece costs (the whole less the whole without
    it), and what no single removal explains (the rest of each part).  Absent targets give no row."""
    rows: list[tuple[str, str, float]] = []

    def part(name: str, whole: str, floor: str, prefix: str, pieces) -> None:
        if whole not in counts or floor not in counts:
            return
        taken = 0.0
        for p in pieces:
            other = f"{prefix}-no-{p}"
            if other in counts:
                cost = counts[whole] - counts[other]
                rows.append((name, p, round(cost, 1)))
                if p not in ("guarded", "observe"):  # these overlap others (check; metrics+inventory+baselines)
                    taken += cost
        rows.append((name, "the rest (no single removal)", round(counts[whole] - counts[floor] - taken, 1)))

    part("checks (flat - forwarder)", "flat", "forwarder", "flat", FLAT_PIECES)
    part("scaffolding (egress-quiet - flat)", "egress-quiet", "flat", "egress", EGRESS_PIECES)
    return rows


def _argv(target: str, *, python: str, egress_bin: Path | None, port: int, cfg: Path, provider: str) -> list[str]:
    if target.startswith("egress-no-"):
        return [python, str(HERE / "ablate.py"), target.removeprefix("egress-no-"),
                "serve", "--config", str(cfg), "--workers", "1"]
    if target.startswith("flat-no-"):
        target = "flat"  # the pieces go in FLAT_WITHOUT (_env)
    if target == "forwarder":
        return [python, str(HERE / "forwarder.py"), str(port), provider]
    if target == "floor-proxy":
        return [python, str(HERE / "forwarder.py"), str(port), provider, "--validate"]
    if target == "flat":
        return [python, str(HERE / "flat.py"), str(port), str(cfg)]
    return [str(egress_bin) if egress_bin else python, *([] if egress_bin else ["-m", "egress"]),
            "serve", "--config", str(cfg), "--workers", "1"]


def run(bench, egress_bin: Path, headers: dict[str, str], bodies: tuple[str, ...], say, *, n: int = 1200,
        targets=TARGETS) -> dict:
    """The bench's scenario: every target, every body; k instructions per request and the ratios."""
    why = available()
    if why:
        say(f"instructions skipped: valgrind {why}")
        return {"skipped": why}
    import ablation
    python = str(egress_bin.parent / "python")
    provider = f"http://127.0.0.1:{bench.provider_port}/v1"
    result: dict = {"n": n, "connections": CONNECTIONS, "bodies": {}}
    for body in bodies:
        counts, split = {}, {}
        for target in targets:
            port, aport = free_port(), free_port()
            cfg = fixtures.egress_config(bench.work / f"instr-{target}.yaml", port=port, admin_port=aport,
                                         provider_port=bench.provider_port, violations_upstream=False)
            env = bench.egress_env(bench.otlp_port)
            if target != "egress":
                env = ablation.quiet_env(env)
            prefix = "" if target in ("forwarder", "floor-proxy") else "/pay"
            counts[target] = count(bench.procs, f"instr-{target}", _argv(target, python=python, egress_bin=egress_bin,
                                                                        port=port, cfg=cfg, provider=provider),
                                   f"http://127.0.0.1:{port}{prefix}{bench_path(body)}", n=n if body == "charge" else n // 2,
                                   headers=headers, python=python, env=env,
                                   proxy_cpus=bench.cpus("proxy"), load_cpus=bench.cpus("load"),
                                   threads=split if target == "egress" else None)
            say(f"instructions {body} {target}: {counts[target] / 1e3:,.1f} k per request")
        result["bodies"][body] = {"k_per_request": {t: round(c / 1e3, 1) for t, c in counts.items()},
                                  "rows": ratios({t: c / 1e3 for t, c in counts.items()})}
        if split:
            result["bodies"][body]["rows"][EXPORTER_ROW] = round(sum(c for t, c in split.items() if t != 1) / 1e3, 1)
    return result


# egress's threads other than the event loop's (the span exporter's): under valgrind each export carries
# tens of times fewer spans than at full speed, so this share is valgrind's more than production's
# (docs/performance.md, "The access line and the sampled spans, profiled")
EXPORTER_ROW = "of egress, its exporter's thread"


def bench_path(body: str) -> str:
    return {"charge": "/charges/ch_ok", "list": "/accounts/acct_ok/charges"}[body]


def render(result: dict, labels: dict[str, str]) -> list[str]:
    if "skipped" in result:
        return ["### Instructions per request (callgrind)", "", f"Skipped: valgrind {result['skipped']}."]
    bodies = list(result["bodies"])
    lines = ["### Instructions per request (callgrind)", "",
             f"k instructions per request over {result['n']:,} requests at 1.3 KB and {result['n'] // 2:,} at 65 KB "
             f"({result['connections']} keep-alive connections), each target alone under valgrind; repeatable "
             "to ~0.1 %, so these ratios do not move with the host's load.", "",
             "| | " + " | ".join(labels.get(b, b) for b in bodies) + " |", "| --- |" + " --: |" * len(bodies)]
    for t in TARGETS:
        if all(t in result["bodies"][b]["k_per_request"] for b in bodies):
            lines.append(f"| {t} | " + " | ".join(f"{result['bodies'][b]['k_per_request'][t]:,.1f}" for b in bodies) + " |")
    rows = list(dict.fromkeys(k for b in bodies for k in result["bodies"][b]["rows"]))
    for r in rows:
        cells = []
        for b in bodies:
            v = result["bodies"][b]["rows"].get(r)
            cells.append("" if v is None else (f"{v:.2f}x" if " / " in r else f"{v:,.1f}"))
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1600)
    ap.add_argument("--body", default="charge", choices=("charge", "list"))
    ap.add_argument("--target", action="append", default=[], metavar="NAME=DIR",
                    help="a source tree whose egress package is imported first (repeatable)")
    ap.add_argument("--obs", action="store_true", help="the full egress (access log, 10 %% spans) instead of egress-quiet")
    ap.add_argument("--threads", action="store_true",
                    help="count each thread apart too (the event loop's, the span exporter's): one line per thread")
    ap.add_argument("--also", default="", help="comma-separated: forwarder, floor-proxy, flat, flat-no-PIECE, "
                    "egress-no-PIECE (this tree's bench and egress; see flat.py, ablate.py)")
    ap.add_argument("--accounting", action="store_true",
                    help="what each piece costs: forwarder, floor-proxy, flat and egress-quiet, each with and "
                    "without each piece, then the table (this tree; ~40 s a target at --n 1600)")
    a = ap.parse_args()
    if a.accounting:
        a.also = ",".join(accounting_targets())
    why = available()
    if why:
        sys.exit(f"valgrind {why}")
    work = Path(tempfile.mkdtemp(prefix="instr-"))
    procs = Processes(work)
    python = sys.executable
    try:
        fixtures.write_docroot(work / "docroot")
        pport, otlp = free_port_pair(), free_port()
        p = procs.start("nginx", ["nginx", "-p", str(work), "-c", str(fixtures.nginx_conf(work, pport, otlp)),
                                  "-e", str(work / "nginx-error.log")], cpus="1")
        wait_http(f"http://127.0.0.1:{pport}/v1/charges/ch_ok", 15, p)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and not k.lower().endswith("_proxy")}
        headers = {"X-Egress-Caller": "checkout", "Authorization": f"Bearer {fixtures.internal_jwt()}",
                   "X-Internal-User": "u_42", "Accept": "application/json"}
        jobs = [(t, None) for t in a.also.split(",") if t] + [tuple(x.split("=", 1)) for x in a.target]
        counts: dict[str, float] = {}
        for name, tree in jobs:
            port, aport = free_port(), free_port()
            cfg = fixtures.egress_config(work / f"{name}.yaml", port=port, admin_port=aport, provider_port=pport,
                                         violations_upstream=False)
            env = dict(base_env, EGRESS_LOG_LEVEL="warning", PYTHONPATH=tree or str(HERE))
            if name.startswith("flat-no-"):
                env["FLAT_WITHOUT"] = name.removeprefix("flat-no-")
            if tree and a.obs:
                env.update({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1",
                            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp}", "EGRESS_LOG_LEVEL": "info",
                            "OTEL_SERVICE_NAME": "egress-bench"})
            kind = "egress" if tree or name == "egress-quiet" else name
            argv = _argv(kind, python=python, egress_bin=None, port=port, cfg=cfg, provider=f"http://127.0.0.1:{pport}/v1")
            prefix = "" if kind in ("forwarder", "floor-proxy") else "/pay"
            split: dict[int, float] | None = {} if a.threads else None
            k = count(procs, name, argv, f"http://127.0.0.1:{port}{prefix}{bench_path(a.body)}", n=a.n,
                      headers=headers, python=python, env=env, proxy_cpus="0", load_cpus="1", threads=split)
            counts[name] = k / 1e3
            print(f"{name:20s} {a.body}: {k / 1e3:9,.1f} k instructions per request ({a.n} requests)", flush=True)
            for thread, per in (split or {}).items():
                print(f"{'':20s}   thread {thread}: {per / 1e3:9,.1f} k", flush=True)
        if a.accounting:
            print()
            print(f"| part | piece | k instructions per request ({a.body}) |")
            print("| --- | --- | --: |")
            for part, piece, k in accounting(counts):
                print(f"| {part} | {piece} | {k:,.1f} |")
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
