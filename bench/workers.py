"""`--workers N`, side by side: the forked model (the parent compiles once, gc.freeze, fork; one
aggregating admin port) against N separate `egress serve --reuse-port` processes (the model
before it: each compiles, each answers the admin port for itself).

    .venv/bin/python bench/workers.py [--workers 2] [--scrapes 40]

Contracts: the vendor OpenAPI documents in ../shared/conformance/openapi (Twilio, OpenAI).
Measures, per model: seconds until every worker serves, proportional set size (PSS, shared
pages split between the processes that share them) summed over every process of the model,
and /metrics scrape latency (median, p90) with some traffic recorded.  Writes
bench/results/workers.json and prints a table.  Processes are started here and stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EGRESS = Path(sys.executable).parent / "egress"
VENDOR = ROOT.parent / "shared" / "conformance" / "openapi"


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def config(tmp: Path) -> tuple[Path, int, int]:
    port, admin = free_port(), free_port()
    for name in ("twilio_api_v2010.json", "openai.openapi.yaml"):
        shutil.copy(VENDOR / name, tmp / name)
    cfg = tmp / "egress.yaml"
    cfg.write_text(f"""listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
contracts_dir: .
callers: {{required: false}}
upstreams:
  - {{name: twilio, url: "https://api.twilio.com/2010-04-01", contract: twilio_api_v2010.json, mode: report}}
  - {{name: openai, url: "https://api.openai.com/v1", contract: openai.openapi.yaml, mode: report}}
""")
    return cfg, port, admin


def measure(model: str, workers: int, scrapes: int, tmp: Path) -> dict:
    cfg, port, admin = config(tmp)
    log = open(tmp / f"{model}.log", "wb")
    started = time.monotonic()
    if model == "forked":
        procs = [subprocess.Popen([str(EGRESS), "serve", "--config", str(cfg), "--workers", str(workers)],
                                  stdout=log, stderr=subprocess.STDOUT)]
    else:
        procs = [subprocess.Popen([str(EGRESS), "serve", "--config", str(cfg), "--workers", "1", "--reuse-port"],
                                  stdout=log, stderr=subprocess.STDOUT) for _ in range(workers)]
    try:
        while True:  # every worker serves: its "listening" line is out
            if (tmp / f"{model}.log").read_bytes().count(b'"msg":"listening"') >= workers \
                    and get(f"http://127.0.0.1:{admin}/readyz")[0] == 200:
                break
            if any(p.poll() is not None for p in procs) or time.monotonic() - started > 600:
                raise SystemExit(f"{model}: did not start: {(tmp / f'{model}.log').read_text()[-2000:]}")
            time.sleep(0.05)
        ready_s = time.monotonic() - started
        for i in range(50):  # some traffic, so the scrape has samples (refusals: no partner needed)
            get(f"http://127.0.0.1:{port}/nowhere/{i}")
        time.sleep(1.0)
        pids = [p.pid for p in procs] + [c for p in procs for c in children(p.pid)]
        pss = sum(pss_kb(pid) for pid in pids) / 1024
        lat = []
        for _ in range(scrapes):
            t = time.perf_counter()
            status, body = get(f"http://127.0.0.1:{admin}/metrics")
            lat.append((time.perf_counter() - t) * 1000)
            assert status == 200, status
        counts = set()
        for _ in range(8):
            text = get(f"http://127.0.0.1:{admin}/metrics")[1].decode()
            counts.add(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                           if line.startswith("egress_requests_total{")))
        lat.sort()
        return {"model": model, "workers": workers, "processes": len(pids), "ready_s": round(ready_s, 2),
                "pss_mb": round(pss, 1), "scrape_ms_p50": round(statistics.median(lat), 2),
                "scrape_ms_p90": round(lat[int(len(lat) * 0.9) - 1], 2),
                "requests_counted_by_8_scrapes": sorted(counts)}
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scrapes", type=int, default=40)
    args = ap.parse_args()
    if not VENDOR.is_dir():
        print(f"bench/workers.py needs the vendor documents at {VENDOR}", file=sys.stderr)
        return 2
    results = []
    for model in ("separate", "forked"):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(measure(model, args.workers, args.scrapes, Path(tmp)))
    sep, fork = results
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
           "results": results,
           "ratios_forked_vs_separate": {k: round(fork[k] / sep[k], 2) for k in ("ready_s", "pss_mb", "scrape_ms_p50")}}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "workers.json").write_text(json.dumps(out, indent=2) + "\n")
    print("| model | processes | ready (s) | PSS total (MB) | /metrics p50 / p90 (ms) | 50 requests counted by 8 scrapes |")
    print("| --- | --: | --: | --: | --: | --- |")
    for r in results:
        print(f"| {r['model']} x{r['workers']} | {r['processes']} | {r['ready_s']} | {r['pss_mb']} | "
              f"{r['scrape_ms_p50']} / {r['scrape_ms_p90']} | {r['requests_counted_by_8_scrapes']} |")
    print("forked / separate:", out["ratios_forked_vs_separate"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
