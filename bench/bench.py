"""The side-by-side benchmark (run it with `bench/run`, which installs wrk, nginx, Prism, py-spy).

Scenarios, in this order, against one fake provider (nginx serving static JSON):
  cost rows    bench/cost_rows.py on the proxy's CPU: the floor's parse+validate µs, contract
               size, observer, identity, rate-limit check (memory, Redis), SSE per event
  preflight    every target answers every body as expected (valid: 200, invalid: refused)
  throughput   wrk -t1 -c32, round-robin over targets x bodies, N rounds: req/s, p50, p99,
               the proxy's CPU µs per request (/proc, its process tree) and the ratio to the
               floor (the forwarder's CPU µs/request + in-process parse + validate, same run)
  ablation     forwarder, egress, egress with no access log and no traces, egress with nothing
               configured, flat (egress's checks in one coroutine, no scaffolding), floor-proxy
               (forwarder + orjson + jsonschema-rs): where egress's CPU goes, by subtraction
               (bench/ablation.py)
  instructions the ablation's targets one at a time under valgrind (callgrind): k instructions
               per request and their ratios, repeatable to ~0.1 % whatever the host's load
               (bench/instructions.py)
  violations   egress and Prism on the invalid twins (the refusal path)
  open loop    300 req/s from bench/openloop.py: latency egress adds over direct
  profile      py-spy on egress (1 worker) under wrk: where the time goes
  memory       egress with 1,000 templated operations x 1,000 callers: RSS after 100k
               requests, then a soak sampled every 10 s
Results: a table on stdout, bench/results/latest.json and latest.md (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import ablation
import instructions
import cost_rows
import fixtures
import loads
import profiles
from procs import ForeignCpu, Processes, cpu_seconds, free_port, free_port_pair, rss_mb, wait_http

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_PY = REPO / ".venv" / "bin" / "python"
EGRESS = REPO / ".venv" / "bin" / "egress"
PRISM = HERE / ".node_modules" / "node_modules" / ".bin" / "prism"
PYSPY = HERE / ".tools" / "bin" / "py-spy"
RESULTS = HERE / "results"
BODIES = ("charge", "list")
ALL_SCENARIOS = "throughput,ablation,instructions,violations,openloop,profile,memory"
QUIET_CORES = 0.15  # other processes' CPU (in cores) under which the machine counts as quiet
LABEL = {"charge": "1.3 KB", "list": "65 KB", "charge_invalid": "1.3 KB invalid", "list_invalid": "65 KB invalid"}


@dataclass(frozen=True)
class Plan:
    rounds: int
    duration: float
    warmup: float
    violation_duration: float
    ol_rounds: int
    ol_duration: float
    ol_rate: float
    profile_duration: float
    svg: bool
    quiet_wait: float  # before each measurement, wait up to this long for other processes to quiet down
    mem_operations: int
    mem_requests: int
    soak: float
    soak_every: float


FULL = Plan(rounds=3, duration=10, warmup=2, violation_duration=5, ol_rounds=3, ol_duration=15, ol_rate=300,
            profile_duration=20, svg=True, quiet_wait=15, mem_operations=1000, mem_requests=100_000, soak=120, soak_every=10)
QUICK = Plan(rounds=1, duration=2, warmup=1, violation_duration=1, ol_rounds=1, ol_duration=2, ol_rate=300,
             profile_duration=4, svg=False, quiet_wait=0, mem_operations=100, mem_requests=10_000, soak=10, soak_every=2)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def headers() -> dict[str, str]:
    """What an internal service sends: its name, its own internal JWT, an internal header."""
    return {"X-Egress-Caller": "checkout", "Authorization": f"Bearer {fixtures.internal_jwt()}",
            "X-Internal-User": "u_42", "Accept": "application/json"}


def get(url: str, hdrs: dict[str, str]) -> tuple[int, int, dict]:
    req = urllib.request.Request(url, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, len(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, len(err.read()), dict(err.headers)


class Bench:
    def __init__(self, plan: Plan, *, pin: bool, prism: bool, log_level: str) -> None:
        self.plan, self.pin, self.want_prism, self.log_level = plan, pin, prism, log_level
        self.work = Path(tempfile.mkdtemp(prefix="egress-bench-"))
        self.procs = Processes(self.work)
        self.targets: dict[str, str] = {}  # name -> base URL (the body paths are appended)
        self.pids: dict[str, int] = {}
        self.out: dict = {"notes": []}
        self.foreign = ForeignCpu()
        self.run_name = "latest"  # results file names: latest (full run), quick, only-...

    def measured(self, fn):
        """Run fn() after a (bounded) wait for a quiet machine; note others' CPU meanwhile."""
        waited, before = (self.foreign.wait_quiet(QUIET_CORES, self.plan.quiet_wait)
                          if self.plan.quiet_wait > 0 else (0.0, float("nan")))
        snap = self.foreign.snapshot()
        res = fn()
        res["others_cores"] = round(self.foreign.since(snap), 3)
        res["quiet_wait_s"], res["others_before"] = round(waited, 1), round(before, 3)
        return res

    # cpu plan: the load generator and the provider on CPU 1, a one-process proxy on CPU 0
    def cpus(self, role: str) -> str | None:
        if not self.pin:
            return None
        return {"load": "1", "proxy": "0", "both": "0,1"}[role]

    def egress_env(self, otlp_port: int) -> dict:
        env = dict(os.environ)
        env.update({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
                    "OTEL_SERVICE_NAME": "egress-bench", "EGRESS_LOG_LEVEL": self.log_level})
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            env.pop(key, None)
        return env

    # ---------------------------------------------------------------- set-up
    def start(self) -> None:
        sizes = fixtures.write_docroot(self.work / "docroot")
        self.out["body_bytes"] = sizes
        self.provider_port, self.otlp_port = free_port_pair(), free_port()
        conf = fixtures.nginx_conf(self.work, self.provider_port, self.otlp_port)
        p = self.procs.start("nginx", ["nginx", "-p", str(self.work), "-c", str(conf), "-e",
                                       str(self.work / "nginx-error.log")], cpus=self.cpus("load"))
        wait_http(f"http://127.0.0.1:{self.provider_port}/v1/charges/ch_ok", 15, p)
        self.targets["direct"] = f"http://127.0.0.1:{self.provider_port}/v1"

        fport = free_port()
        p = self.procs.start("forwarder", [str(VENV_PY), str(HERE / "forwarder.py"), str(fport),
                                           f"http://127.0.0.1:{self.provider_port}/v1"], cpus=self.cpus("proxy"))
        wait_http(f"http://127.0.0.1:{fport}/charges/ch_ok", 20, p)
        self.targets["forwarder"] = f"http://127.0.0.1:{fport}"
        self.pids["forwarder"] = p.pid

        if self.want_prism and PRISM.exists():
            pport = free_port()
            p = self.procs.start("prism", [str(PRISM), "proxy", str(fixtures.CONTRACTS / "payments.openapi.yaml"),
                                           f"http://127.0.0.1:{self.provider_port}/v1", "--errors",
                                           "-p", str(pport), "-h", "127.0.0.1", "-v", "error"],
                                 cpus=self.cpus("proxy"))
            wait_http(f"http://127.0.0.1:{pport}/charges/ch_ok", 60, p)
            self.targets["prism"] = f"http://127.0.0.1:{pport}"
            self.pids["prism"] = p.pid
        else:
            self.out["notes"].append("Prism skipped (not installed or --no-prism): no Prism column")
            say("Prism skipped: not installed (npm failed?) or --no-prism")

        env = self.egress_env(self.otlp_port)
        for name, workers, role in (("egress", 1, "proxy"), ("egress-w2", 2, "both")):
            port, aport = free_port(), free_port()
            cfg = fixtures.egress_config(self.work / f"{name}.yaml", port=port, admin_port=aport,
                                         provider_port=self.provider_port)
            p = self.procs.start(name, [str(EGRESS), "serve", "--config", str(cfg), "--workers", str(workers)],
                                 cpus=self.cpus(role), env=env)
            wait_http(f"http://127.0.0.1:{aport}/healthz", 60, p)
            wait_http(f"http://127.0.0.1:{port}/pay/charges/ch_ok", 20, p)
            self.targets[name] = f"http://127.0.0.1:{port}/pay"
            self.pids[name] = p.pid
            self.admin = getattr(self, "admin", f"http://127.0.0.1:{aport}")
        # the violation path: the same upstream, but its breaker does not count violations
        self.targets["egress-violations"] = self.targets["egress"].replace("/pay", "/payinv")

    def cost_rows(self) -> None:
        """In-process rows (bench/cost_rows.py): the parse+validate floor, contract size, identity,
        rate-limit check, SSE per event."""
        n = 300 if self.plan.rounds == 1 else 2000
        out = self.work / "cost_rows.json"
        # on the proxy's CPU, so the floor's part and the proxies' CPU are measured alike
        cmd = [str(VENV_PY), str(HERE / "cost_rows.py"), "--n", str(n), "--repeat", "3" if n < 1000 else "5",
               "--json", str(out)]
        done = subprocess.run((["taskset", "-c", self.cpus("proxy")] if self.cpus("proxy") else []) + cmd,
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:  # the proxies' rows still come; without a floor ratio
            self.out["notes"].append(f"cost rows failed (no floor ratio): {done.stderr.strip()[-300:]}")
            say(f"cost rows FAILED (no floor ratio in this run): {done.stderr.strip()[-300:]}")
            return
        self.out["cost_rows"] = rows = json.loads(out.read_text())
        say("cost rows: " + ", ".join(f"{k} {v:.1f} us" for k, v in rows["floor_parse_validate_us"].items())
            + "; " + ", ".join(f"{k} {v:.1f} us" for k, v in rows["contract_us"].items()))

    def preflight(self) -> None:
        hdrs, rows, bad = headers(), {}, []
        for target, base in self.targets.items():
            for body, path in fixtures.PATHS.items():
                status, size, h = get(base + path, hdrs)
                rows[f"{target} {body}"] = {"status": status, "bytes": size,
                                             "contract": h.get("X-Egress-Contract"), "error": h.get("X-Egress-Error")}
                valid = not body.endswith("_invalid")
                checks = target in ("prism", "egress", "egress-w2", "egress-violations")
                if target == "egress-violations" and valid:
                    continue
                if (valid or not checks) and status != 200:
                    bad.append(f"{target} {body}: {status}")
                if not valid and checks and status < 400:
                    bad.append(f"{target} {body}: {status} (a violation passed)")
        self.out["preflight"] = rows
        if bad:
            raise SystemExit("preflight failed: " + "; ".join(bad) + f" (logs in {self.work})")
        say("preflight ok: every target answers the valid bodies with 200, validating ones refuse the invalid twins")

    # ---------------------------------------------------------------- scenarios
    def throughput(self) -> None:
        plan, hdrs = self.plan, headers()
        names = [t for t in ("direct", "forwarder", "prism", "egress", "egress-w2") if t in self.targets]
        for body in BODIES:
            for t in names:
                loads.run_wrk(self.targets[t] + fixtures.PATHS[body], plan.warmup, headers=hdrs, cpus=self.cpus("load"))
        runs = []
        for r in range(plan.rounds):
            for body in BODIES:
                for t in names:
                    url = self.targets[t] + fixtures.PATHS[body]
                    pid = self.pids.get(t)
                    cpu0 = cpu_seconds(pid) if pid else None
                    res = self.measured(lambda: loads.run_wrk(url, plan.duration, headers=hdrs, cpus=self.cpus("load")))
                    res.update(target=t, body=body, round=r)
                    # the proxy's own CPU (its process tree, from /proc) per request served
                    res["cpu_us"] = ((cpu_seconds(pid) - cpu0) / res["requests"] * 1e6
                                     if pid and res["requests"] else None)
                    runs.append(res)
                    say(f"round {r + 1}/{plan.rounds} {t:10s} {LABEL[body]:7s} {res['rps']:8.0f} req/s "
                        f"p50 {res['p50_ms']:.2f} ms p99 {res['p99_ms']:.2f} ms"
                        + (f"  NON-2XX {res['non2xx']}" if res["non2xx"] else "")
                        + (f"  {res['cpu_us']:.0f} us CPU/req" if res["cpu_us"] else "")
                        + f"  (others {res['others_cores']:.2f} cores)")
        self.out["throughput_runs"] = runs
        summary = {}
        for body in BODIES:
            for t in names:
                mine = [x for x in runs if x["target"] == t and x["body"] == body]
                rps = [x["rps"] for x in mine]
                med = statistics.median(rps)
                summary[f"{t}|{body}"] = {
                    "target": t, "body": body, "rps": med, "rps_rounds": rps,
                    "p50_ms": statistics.median(x["p50_ms"] for x in mine),
                    "p99_ms": statistics.median(x["p99_ms"] for x in mine),
                    "spread": (max(rps) - min(rps)) / med if med else None,
                    "cpu_us": (statistics.median(x["cpu_us"] for x in mine) if all(x["cpu_us"] for x in mine) else None),
                    "others_cores": statistics.median(x["others_cores"] for x in mine),
                    "errors": sum(x["non2xx"] + x["socket_errors"] for x in mine)}
        for body in BODIES:
            fw = summary.get(f"forwarder|{body}", {}).get("rps")
            pr = summary.get(f"prism|{body}", {}).get("rps")
            for t in names:
                s = summary[f"{t}|{body}"]
                s["vs_forwarder"] = s["rps"] / fw if fw else None
                s["vs_prism"] = s["rps"] / pr if pr else None
        # the floor of a validating proxy: the forwarder's CPU per request + parse + validate
        parse = self.out.get("cost_rows", {}).get("floor_parse_validate_us", {})
        for body in BODIES:
            fw_cpu = summary.get(f"forwarder|{body}", {}).get("cpu_us")
            floor = fw_cpu + parse[body] if fw_cpu and body in parse else None
            for t in names:
                s = summary[f"{t}|{body}"]
                s["floor_us"] = floor
                s["vs_floor"] = s["cpu_us"] / floor if floor and s["cpu_us"] else None
        self.out["throughput"] = summary
        spreads = [s["spread"] for s in summary.values() if s["spread"] is not None]
        others = [x["others_cores"] for x in runs]
        self.out["noise"] = {"max_spread": max(spreads) if spreads else None,
                             "median_spread": statistics.median(spreads) if spreads else None,
                             "runs": len(runs), "contended_runs": sum(o >= QUIET_CORES for o in others),
                             "others_cores_median": statistics.median(others) if others else None,
                             "others_cores_max": max(others) if others else None}

    def ablation(self) -> None:
        self.out["ablation"] = ablation.run(self, EGRESS, headers(), BODIES, say)

    def instructions(self) -> None:
        self.out["instructions"] = instructions.run(self, EGRESS, headers(), BODIES, say,
                                                    n=1200 if self.plan.rounds > 1 else 200)

    def violations(self) -> None:
        hdrs, res = headers(), {}
        for t in ("egress-violations", "prism"):
            if t not in self.targets:
                continue
            for body in ("charge_invalid", "list_invalid"):
                url = self.targets[t] + fixtures.PATHS[body]
                r = self.measured(lambda: loads.run_wrk(url, self.plan.violation_duration, headers=hdrs,
                                                        cpus=self.cpus("load")))
                res[f"{t}|{body}"] = r | {"target": t, "body": body}
                say(f"violations {t:17s} {LABEL[body]:15s} {r['rps']:8.0f} req/s (refused: {r['non2xx']})")
        self.out["violations"] = res

    def open_loop(self) -> None:
        plan, hdrs = self.plan, headers()
        names = ("direct", "forwarder", "egress")
        pooled: dict[str, list[float]] = {}
        rounds = []
        for r in range(plan.ol_rounds):
            for body in BODIES:
                for t in names:
                    cmd = [str(VENV_PY), str(HERE / "openloop.py"), self.targets[t] + fixtures.PATHS[body],
                           "--rate", str(plan.ol_rate), "--duration", str(plan.ol_duration), "--samples"]
                    for k, v in hdrs.items():
                        cmd += ["-H", f"{k}: {v}"]
                    if self.cpus("load"):
                        cmd = ["taskset", "-c", self.cpus("load"), *cmd]
                    def one(cmd=cmd):
                        done = subprocess.run(cmd, capture_output=True, text=True, timeout=plan.ol_duration + 60)
                        if done.returncode != 0:
                            raise RuntimeError(f"openloop failed: {done.stderr[-500:]}")
                        return json.loads(done.stdout)
                    res = self.measured(one)
                    pooled.setdefault(f"{t}|{body}", []).extend(res.pop("samples_ms"))
                    rounds.append(res | {"target": t, "body": body, "round": r})
                    say(f"open loop {plan.ol_rate:.0f}/s round {r + 1} {t:9s} {LABEL[body]:7s} "
                        f"p50 {res['latency_ms']['p50']:.2f} ms p99 {res['latency_ms']['p99']:.2f} ms "
                        f"errors {res['errors']} (send lag p99 {res['send_lag_ms']['p99']:.2f} ms, others {res['others_cores']:.2f} cores)")
        from openloop import percentile
        summary = {}
        for key, samples in pooled.items():
            samples.sort()
            summary[key] = {q: percentile(samples, float(q[1:])) for q in ("p50", "p90", "p99", "p99.9")}
            summary[key]["count"] = len(samples)
        for body in BODIES:
            for t in ("forwarder", "egress"):
                s, d = summary[f"{t}|{body}"], summary[f"direct|{body}"]
                s["added_p50"], s["added_p99"] = s["p50"] - d["p50"], s["p99"] - d["p99"]
                per_round = [x for x in rounds if x["body"] == body]
                s["added_p50_rounds"] = [
                    a["latency_ms"]["p50"] - b["latency_ms"]["p50"]
                    for a, b in zip([x for x in per_round if x["target"] == t],
                                    [x for x in per_round if x["target"] == "direct"])]
        self.out["open_loop"] = {"rate": plan.ol_rate, "rounds": rounds, "summary": summary,
                                 "errors": sum(x["errors"] for x in rounds)}

    def profile(self) -> None:
        if not PYSPY.exists():
            self.out["notes"].append("profile skipped: py-spy not installed")
            return
        pid, hdrs, dur = self.pids["egress"], headers(), self.plan.profile_duration
        found = {}
        jobs = [(body, "raw") for body in BODIES] + ([("charge", "flamegraph")] if self.plan.svg else [])
        for body, fmt in jobs:
            load = subprocess.Popen(
                (["taskset", "-c", self.cpus("load")] if self.cpus("load") else [])
                + ["wrk", "-t1", "-c32", f"-d{round(dur + 4)}s"] + sum((["-H", f"{k}: {v}"] for k, v in hdrs.items()), [])
                + [self.targets["egress"] + fixtures.PATHS[body]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(2)
                snap = self.foreign.snapshot()
                prefix = "" if self.run_name == "latest" else f"{self.run_name}-"
                out = RESULTS / (f"{prefix}profile-{body}.txt" if fmt == "raw" else f"{prefix}profile.svg")
                cmd = [str(PYSPY), "record", "--pid", str(pid), "--duration", str(round(dur)), "--rate", "100",
                       "--format", fmt, "--output", str(out)]
                if fmt == "raw":
                    cmd.append("--function")
                spy = subprocess.run(cmd, capture_output=True, text=True, timeout=dur + 60)
                if spy.returncode != 0:
                    self.out["notes"].append(f"py-spy failed: {spy.stderr.strip()[-300:]}")
                    say(f"py-spy failed: {spy.stderr.strip()[-300:]}")
                    continue
                if fmt == "raw":
                    found[body] = profiles.summarize(out.read_text())
                    found[body]["others_cores"] = round(self.foreign.since(snap), 3)
                    say(f"profile {LABEL[body]}: {found[body]['samples']} samples; top self: "
                        + ", ".join(f"{n} {s:.0%}" for n, s in found[body]["self"][:3]))
            finally:
                load.wait(timeout=dur + 30)
        self.out["profile"] = found

    def memory(self) -> None:
        plan = self.plan
        cdir = fixtures.many_operations_contract(self.work, plan.mem_operations)
        port, aport = free_port(), free_port()
        cfg = fixtures.egress_config(self.work / "egress-memory.yaml", port=port, admin_port=aport,
                                     provider_port=self.provider_port, contracts_dir=cdir,
                                     contract="many.yaml", upstream="many", callers=("*",), violations_upstream=False)
        p = self.procs.start("egress-memory", [str(EGRESS), "serve", "--config", str(cfg), "--workers", "1"],
                             cpus=self.cpus("proxy"), env=self.egress_env(self.otlp_port))
        startup = wait_http(f"http://127.0.0.1:{aport}/healthz", 600, p)
        say(f"memory: egress with {plan.mem_operations} operations ready in {startup:.1f} s")
        idle = rss_mb(p.pid)
        script = self.work / "varied.lua"
        script.write_text(loads.VARIED_LUA)
        hdrs = {"Authorization": headers()["Authorization"]}
        url = f"http://127.0.0.1:{port}/many"
        done, chunks, bad = 0, 0, 0
        while done < plan.mem_requests and chunks < 40:
            r = loads.run_wrk(url, 10 if plan.mem_requests >= 50_000 else 2, headers=hdrs, script=script,
                              script_args=("/many", str(1000 + chunks), str(plan.mem_operations)),
                              cpus=self.cpus("load"))
            done, chunks, bad = done + r["requests"], chunks + 1, bad + r["non2xx"] + r["socket_errors"]
        after = rss_mb(p.pid)
        say(f"memory: RSS idle {idle:.1f} MB, after {done} requests {after:.1f} MB (errors {bad})")
        samples = []
        snap = self.foreign.snapshot()
        load = subprocess.Popen(
            (["taskset", "-c", self.cpus("load")] if self.cpus("load") else [])
            + ["wrk", "-t1", "-c32", f"-d{round(plan.soak + 3)}s", "-H", f"Authorization: {hdrs['Authorization']}",
               "-s", str(script), url, "--", "/many", "7", str(plan.mem_operations)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            t0 = time.monotonic()
            for i in range(int(plan.soak / plan.soak_every) + 1):
                time.sleep(max(0.0, t0 + i * plan.soak_every - time.monotonic()))
                samples.append({"t": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(p.pid), 1)})
        finally:
            soak_out, _ = load.communicate(timeout=plan.soak + 30)
        soak = loads.parse_wrk(soak_out)
        soak_others = self.foreign.since(snap)
        inventory = len(urllib.request.urlopen(f"http://127.0.0.1:{aport}/admin/inventory", timeout=10).read())
        metrics = len(urllib.request.urlopen(f"http://127.0.0.1:{aport}/metrics", timeout=10).read())
        first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
        self.out["memory"] = {
            "operations": plan.mem_operations, "callers": 1000, "startup_s": startup, "rss_idle_mb": idle,
            "requests": done, "errors": bad, "rss_after_mb": after, "soak_s": plan.soak,
            "soak_requests": soak["requests"], "soak_errors": soak["non2xx"] + soak["socket_errors"],
            "samples": samples, "first_mb": first, "last_mb": last, "max_mb": max(s["rss_mb"] for s in samples),
            "drift": (last - first) / first, "soak_others_cores": round(soak_others, 3), "inventory_bytes": inventory, "metrics_bytes": metrics}
        say(f"memory: soak {plan.soak:.0f} s ({soak['requests']} requests): first {first} MB, last {last} MB, "
            f"max {self.out['memory']['max_mb']} MB, drift {self.out['memory']['drift']:+.1%}")
        self.procs.stop("egress-memory")

    def close(self, keep: bool) -> None:
        self.procs.stop_all()
        if keep:
            say(f"work dir kept: {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


# -------------------------------------------------------------------- report
TARGETS = {  # name -> (description, check)
    "1.3 KB >= 0.6x forwarder": lambda o: _tp(o, "egress", "charge", "vs_forwarder", 0.6),
    "1.3 KB >= 3x Prism": lambda o: _tp(o, "egress", "charge", "vs_prism", 3),
    "65 KB >= 0.4x forwarder": lambda o: _tp(o, "egress", "list", "vs_forwarder", 0.4),
    "65 KB >= 8x Prism": lambda o: _tp(o, "egress", "list", "vs_prism", 8),
    "1.3 KB <= 1.6x the floor (CPU µs/req)": lambda o: _floor(o, "charge", 1.6),
    "65 KB <= 1.6x the floor (CPU µs/req)": lambda o: _floor(o, "list", 1.6),
    "added p50 <= 0.5 ms at 300 req/s (1.3 KB)": lambda o: _ol(o, "added_p50", 0.5),
    "added p99 <= 5 ms at 300 req/s (1.3 KB)": lambda o: _ol(o, "added_p99", 5.0),
    "RSS <= 150 MB after 100k requests": lambda o: _mem(o, "rss_after_mb", lambda v: v <= 150),
    "RSS drift < 5% over the soak": lambda o: _mem(o, "drift", lambda v: abs(v) < 0.05),
    "--workers 2 >= 1.4x one worker (1.3 KB)": lambda o: _w2(o, "charge"),
    "--workers 2 >= 1.4x one worker (65 KB)": lambda o: _w2(o, "list"),
}


def _tp(o, t, body, key, limit):
    v = o.get("throughput", {}).get(f"{t}|{body}", {}).get(key)
    return (None, "n/a") if v is None else (v >= limit, f"{v:.2f}x")


def _floor(o, body, limit):
    v = o.get("throughput", {}).get(f"egress|{body}", {}).get("vs_floor")
    return (None, "n/a") if v is None else (v <= limit, f"{v:.2f}x")


def _ol(o, key, limit):
    v = o.get("open_loop", {}).get("summary", {}).get("egress|charge", {}).get(key)
    return (None, "n/a") if v is None else (v <= limit, f"{v:.2f} ms")


def _mem(o, key, ok):
    v = o.get("memory", {}).get(key)
    if v is None:
        return None, "n/a"
    return ok(v), (f"{v:+.1%}" if key == "drift" else f"{v:.0f} MB")


def _w2(o, body):
    tp = o.get("throughput", {})
    a, b = tp.get(f"egress-w2|{body}", {}).get("rps"), tp.get(f"egress|{body}", {}).get("rps")
    return (None, "n/a") if not a or not b else (a / b >= 1.4, f"{a / b:.2f}x")


def _x(v):
    return "-" if v is None else f"{v:.2f}x"


def render(o: dict) -> str:
    lines = ["| target | body | req/s (median) | spread | p50 ms | p99 ms | vs forwarder | vs Prism | CPU µs/req | vs floor | errors | others' CPU |",
             "| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |"]
    for s in o.get("throughput", {}).values():
        cpu = "-" if s.get("cpu_us") is None else f"{s['cpu_us']:.0f}"
        lines.append(f"| {s['target']} | {LABEL[s['body']]} | {s['rps']:,.0f} | {s['spread']:.1%} | {s['p50_ms']:.2f} | "
                     f"{s['p99_ms']:.2f} | {_x(s['vs_forwarder'])} | {_x(s['vs_prism'])} | {cpu} | "
                     f"{_x(s.get('vs_floor'))} | {s['errors']} | {s['others_cores']:.2f} |")
    floors = {s["body"]: s.get("floor_us") for s in o.get("throughput", {}).values() if s.get("floor_us")}
    if floors:
        parse = o.get("cost_rows", {}).get("floor_parse_validate_us", {})
        lines += ["", "Floor (CPU µs/request) = forwarder's CPU µs/request + orjson parse + jsonschema-rs validate "
                  "of the same body in-process, same run: " + "; ".join(
                      f"{LABEL[b]} {f:.0f} µs (parse+validate {parse.get(b, 0):.1f})" for b, f in floors.items()) + "."]
    if o.get("ablation"):
        lines += ["", *ablation.render(o["ablation"], LABEL, o.get("cost_rows", {}).get("floor_parse_validate_us", {}))]
    if o.get("instructions"):
        lines += ["", *instructions.render(o["instructions"], LABEL)]
    if o.get("cost_rows"):
        lines += ["", *cost_rows.render(o["cost_rows"])]
    if o.get("violations"):
        lines += ["", "| refusal path (invalid twins) | body | req/s | p50 ms | p99 ms | refused |", "| --- | --- | --: | --: | --: | --: |"]
        for r in o["violations"].values():
            lines.append(f"| {r['target']} | {LABEL[r['body']]} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                         f"{r['non2xx']}/{r['requests']} |")
    ol = o.get("open_loop")
    if ol:
        lines += ["", f"| open loop {ol['rate']:.0f} req/s | body | p50 ms | p99 ms | p99.9 ms | added p50 | added p99 |",
                  "| --- | --- | --: | --: | --: | --: | --: |"]
        for key, s in ol["summary"].items():
            t, body = key.split("|")
            add = (f"{s['added_p50']:+.2f} ms | {s['added_p99']:+.2f} ms" if "added_p50" in s else "- | -")
            lines.append(f"| {t} | {LABEL[body]} | {s['p50']:.2f} | {s['p99']:.2f} | {s['p99.9']:.2f} | {add} |")
    m = o.get("memory")
    if m:
        lines += ["", f"Memory: {m['operations']} operations x {m['callers']} callers, start-up {m['startup_s']:.1f} s; "
                  f"RSS idle {m['rss_idle_mb']:.0f} MB, after {m['requests']:,} requests {m['rss_after_mb']:.0f} MB; "
                  f"soak {m['soak_s']:.0f} s ({m['soak_requests']:,} requests): first {m['first_mb']:.0f} MB, "
                  f"last {m['last_mb']:.0f} MB, max {m['max_mb']:.0f} MB, drift {m['drift']:+.1%}."]
    lines += ["", "| target (the issue's) | measured | met |", "| --- | --- | --- |"]
    for name, check in TARGETS.items():
        ok, shown = check(o)
        lines.append(f"| {name} | {shown} | {'yes' if ok else ('n/a' if ok is None else 'NO')} |")
    n = o.get("noise", {})
    if n.get("max_spread") is not None:
        lines += ["", f"Machine noise: spread (max-min)/median of req/s between rounds: median {n['median_spread']:.1%}, "
                  f"worst {n['max_spread']:.1%}. Other processes (not the benchmark's) used a median "
                  f"{n['others_cores_median']:.2f} cores (max {n['others_cores_max']:.2f}) during the throughput runs; "
                  f"{n['contended_runs']} of {n['runs']} runs had >= {QUIET_CORES} cores of such load."]
    return "\n".join(lines)


def git_state() -> dict:
    def git(*a):
        r = subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True)
        return r.stdout.strip()
    newest = max((f.stat().st_mtime, str(f.relative_to(REPO))) for f in (REPO / "egress").rglob("*.py"))
    return {"commit": git("rev-parse", "HEAD"), "dirty_files": git("status", "--porcelain", "--", "egress").splitlines(),
            "newest_source": [datetime.fromtimestamp(newest[0], timezone.utc).isoformat(timespec="seconds"), newest[1]]}


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_before": os.getloadavg()}


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short rounds (a smoke test of the harness, < 2 minutes)")
    p.add_argument("--rounds", type=int, help="throughput rounds (full: 3)")
    p.add_argument("--duration", type=float, help="seconds per throughput run (full: 10)")
    p.add_argument("--no-prism", action="store_true")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs with taskset")
    p.add_argument("--log-level", default="info", help="egress EGRESS_LOG_LEVEL (default info: access log on)")
    p.add_argument("--only", default=ALL_SCENARIOS,
                   help="comma-separated scenarios to run")
    p.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs)")
    args = p.parse_args()
    plan = QUICK if args.quick else FULL
    if args.rounds or args.duration:
        from dataclasses import replace
        plan = replace(plan, rounds=args.rounds or plan.rounds, duration=args.duration or plan.duration)
    only = set(args.only.split(","))

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    # stop cleanly (every process we started is stopped) on SIGTERM, and on SIGINT even when
    # started in the background (where the shell sets SIGINT to ignored)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    RESULTS.mkdir(exist_ok=True)
    started = datetime.now(timezone.utc)
    bench = Bench(plan, pin=not args.no_pin and (os.cpu_count() or 1) >= 2, prism=not args.no_prism,
                  log_level=args.log_level)
    o = bench.out
    o.update(command="bench/run " + " ".join(sys.argv[1:]), started=started.isoformat(timespec="seconds"),
             machine=machine(), egress_tree=git_state(), plan=plan.__dict__, pinned=bench.pin,
             cpu_plan="wrk, open-loop generator, nginx on CPU 1; forwarder, Prism, egress (1 worker) on CPU 0; "
                      "egress --workers 2 on both" if bench.pin else "no pinning")
    # a partial run (--only) does not replace the full run's results
    name = "quick" if args.quick else ("latest" if only == set(ALL_SCENARIOS.split(",")) else
                                       "only-" + "-".join(sorted(only)))
    bench.run_name = name
    code = 0
    try:
        bench.cost_rows()
        bench.start()
        bench.preflight()
        for scenario, step in (("throughput", bench.throughput), ("ablation", bench.ablation),
                               ("instructions", bench.instructions), ("violations", bench.violations),
                               ("openloop", bench.open_loop), ("profile", bench.profile), ("memory", bench.memory)):
            if scenario in only:
                say(f"--- {scenario}")
                step()
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        o["failed"] = f"{type(exc).__name__}: {exc}"
        say(f"FAILED: {o['failed']}")
        code = 1
    finally:
        bench.close(keep=args.keep or code != 0)
    o["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    o["egress_tree_end"] = git_state()
    if o["egress_tree_end"] != o["egress_tree"]:
        o["notes"].append("egress/ changed while the benchmark ran: processes started before the change ran "
                          "the old code (see egress_tree and egress_tree_end)")
        say("NOTE: egress/ changed during the run (others edit the repo); see egress_tree_end")
    table = render(o)
    (RESULTS / f"{name}.json").write_text(json.dumps(o, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(f"{o['command']} ({o['started']})\n\n{table}\n")
    print()
    print(table)
    print(f"\nwritten: {RESULTS / (name + '.json')}, {RESULTS / (name + '.md')}")
    return code


if __name__ == "__main__":
    sys.exit(main())
