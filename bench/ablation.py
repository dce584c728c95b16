"""Where egress's CPU goes, by subtraction, in one run: the full pipeline beside itself with parts off.

    bench/run --only ablation        (also part of the full run, after throughput)

Six one-process proxies pinned to the same CPU, measured round-robin (wrk -t1 -c32, the
throughput scenario's duration and rounds), each row its own CPU µs per request (/proc):

  forwarder     bench/forwarder.py (no checks at all)
  egress        the full pipeline exactly as in the throughput rows (access log on, 10 % traces
                exported over OTLP)
  egress-quiet  the same configuration with the observers' output off: EGRESS_LOG_LEVEL=warning
                (no access line) and no trace exporter (no spans built); metrics, inventory and
                baselines still run
  egress-bare   egress with nothing configured but the upstream: no contract (the body is
                relayed unvalidated), the default caller header, the default sanitizing only, no
                credential, default retries and breaker, log warning, no traces
  flat          bench/flat.py on egress-quiet's configuration: the same checks (egress's own
                Router, Identity, Sanitizer, credential, Contract.match and Operation.check) in one
                flat coroutine over plain aiohttp, with no stage structure, no retry loop, breaker,
                limits, metrics or exchange record: what the promised checks cost without egress's
                scaffolding, so what no rearrangement of that scaffolding can go below
  floor-proxy   bench/forwarder.py --validate: the forwarder that parses (orjson) and validates
                (jsonschema-rs) every body, nothing else: the floor's own sum, as a running proxy

Subtractions (same run, same CPU): egress - egress-quiet = access log + sampled spans;
egress-quiet - egress-bare = caller identity, sanitizing lists, credential injection and the
contract check (parse + validate, of which the floor's parse+validate is the part any validating
proxy pays); egress-bare - forwarder = what the pipeline itself costs on top of aiohttp (routing,
the exchange record, resilience wrapper, the pass-through decision, response headers, metrics);
egress-quiet - flat = the scaffolding around the same checks (stages, resilience, limits,
metrics, inventory, baselines, the exchange record, problem answers); flat / floor = how close
to the floor the checks alone, on aiohttp, can come; floor-proxy / floor = what the floor's
sum becomes when its calls run inside a proxy's request rather than in a loop.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import fixtures
import loads
from procs import cpu_seconds, free_port, wait_http

TARGETS = ("forwarder", "egress", "egress-quiet", "egress-bare", "flat", "floor-proxy")
HERE = Path(__file__).resolve().parent


def bare_config(path: Path, *, port: int, admin_port: int, provider_port: int) -> Path:
    doc = {"listen": f"127.0.0.1:{port}", "admin_listen": f"127.0.0.1:{admin_port}", "drain_timeout": 2,
           "upstreams": [{"name": "pay", "url": f"http://127.0.0.1:{provider_port}/v1",
                          "allow_private_addresses": True}]}
    path.write_text(json.dumps(doc, indent=2))
    return path


def quiet_env(env: dict) -> dict:
    env = dict(env)
    for key in [k for k in env if k.startswith("OTEL_")]:
        env.pop(key)
    env["EGRESS_LOG_LEVEL"] = "warning"
    return env


def start(bench, egress_bin: Path) -> None:
    """Start egress-quiet, egress-bare, flat and floor-proxy (the others are the throughput scenario's)."""
    base_env = bench.egress_env(bench.otlp_port)
    port = free_port()
    p = bench.procs.start("floor-proxy", [str(egress_bin.parent / "python"), str(HERE / "forwarder.py"), str(port),
                                          f"http://127.0.0.1:{bench.provider_port}/v1", "--validate"],
                          cpus=bench.cpus("proxy"))
    wait_http(f"http://127.0.0.1:{port}/charges/ch_ok", 20, p)
    bench.targets["floor-proxy"], bench.pids["floor-proxy"] = f"http://127.0.0.1:{port}", p.pid
    for name in ("egress-quiet", "egress-bare", "flat"):
        port, aport = free_port(), free_port()
        cfg_path = bench.work / f"{name}.yaml"
        if name in ("egress-quiet", "flat"):  # flat does the same checks on the same configuration
            cfg = fixtures.egress_config(cfg_path, port=port, admin_port=aport, provider_port=bench.provider_port,
                                         violations_upstream=False)
        else:
            cfg = bare_config(cfg_path, port=port, admin_port=aport, provider_port=bench.provider_port)
        if name == "flat":  # the python of egress's own venv, beside egress_bin
            argv = [str(egress_bin.parent / "python"), str(HERE / "flat.py"), str(port), str(cfg)]
        else:
            argv = [str(egress_bin), "serve", "--config", str(cfg), "--workers", "1"]
        p = bench.procs.start(name, argv, cpus=bench.cpus("proxy"), env=quiet_env(base_env))
        if name != "flat":  # flat has no admin listener
            wait_http(f"http://127.0.0.1:{aport}/healthz", 60, p)
        wait_http(f"http://127.0.0.1:{port}/pay/charges/ch_ok", 20, p)
        bench.targets[name] = f"http://127.0.0.1:{port}/pay"
        bench.pids[name] = p.pid


def run(bench, egress_bin: Path, headers: dict[str, str], bodies: tuple[str, ...], say) -> dict:
    if "egress-bare" not in bench.targets:
        start(bench, egress_bin)
        for name in ("flat", "floor-proxy"):
            check_refuses(name, bench.targets[name], headers)
    plan, runs = bench.plan, []
    for body in bodies:
        for t in TARGETS:
            loads.run_wrk(bench.targets[t] + fixtures.PATHS[body], plan.warmup, headers=headers,
                          cpus=bench.cpus("load"))
    for r in range(plan.rounds):
        for body in bodies:
            for t in TARGETS:
                url, pid = bench.targets[t] + fixtures.PATHS[body], bench.pids[t]
                cpu0 = cpu_seconds(pid)
                res = bench.measured(lambda: loads.run_wrk(url, plan.duration, headers=headers,
                                                           cpus=bench.cpus("load")))
                if res["non2xx"] or res["socket_errors"] or not res["requests"]:
                    raise RuntimeError(f"ablation {t} {body}: {res['non2xx']} non-2xx, "
                                       f"{res['socket_errors']} socket errors of {res['requests']}")
                res.update(target=t, body=body, round=r, cpu_us=(cpu_seconds(pid) - cpu0) / res["requests"] * 1e6)
                runs.append(res)
                say(f"ablation round {r + 1}/{plan.rounds} {t:12s} {body:6s} {res['rps']:8.0f} req/s "
                    f"{res['cpu_us']:.0f} us CPU/req (others {res['others_cores']:.2f} cores)")
    return {"runs": runs, "summary": summarize(runs, bodies)}


DIFFERENCES = {"observers_out": ("egress", "egress-quiet"), "features": ("egress-quiet", "egress-bare"),
               "pipeline": ("egress-bare", "forwarder"), "scaffolding": ("egress-quiet", "flat"),
               "checks_flat": ("flat", "forwarder")}


def summarize(runs: list[dict], bodies) -> dict:
    """Per body: each target's median CPU µs/request, and each subtraction as the median of its
    per-round differences (the rows of one round ran minutes apart at most: the machine's drift
    between rounds cancels out of a paired difference, not out of a difference of medians)."""
    summary = {}
    for body in bodies:
        mine = [x for x in runs if x["body"] == body]
        cpu = {(x["round"], x["target"]): x["cpu_us"] for x in mine}
        rounds = sorted({x["round"] for x in mine})
        row = {t: statistics.median(cpu[r, t] for r in rounds) for t in TARGETS}
        for key, (a, b) in DIFFERENCES.items():
            row[key] = statistics.median(cpu[r, a] - cpu[r, b] for r in rounds)
        # the lower bound of the promised work on aiohttp: the checks (flat) + the access log and
        # sampled spans DESIGN promises (egress - egress-quiet), paired per round
        row["flat_observed"] = statistics.median(cpu[r, "flat"] + cpu[r, "egress"] - cpu[r, "egress-quiet"]
                                                 for r in rounds)
        summary[body] = row
    return summary


def render(result: dict, labels: dict[str, str], parse_validate: dict[str, float]) -> list[str]:
    lines = ["| where egress's CPU goes (same run, CPU µs/request; rows: median of rounds, subtractions: "
             "median of the per-round differences) | "
             + " | ".join(labels[b] for b in result["summary"]) + " |",
             "| --- |" + " --: |" * len(result["summary"])]
    rows = [("forwarder (aiohttp server + client, no checks)", "forwarder"),
            ("egress-bare: the pipeline with nothing configured", "egress-bare"),
            ("egress-quiet: the full configuration, no access log, no traces", "egress-quiet"),
            ("egress: the full configuration as in the throughput rows", "egress"),
            ("= the pipeline itself (bare - forwarder)", "pipeline"),
            ("= identity, sanitizing lists, credential, contract check (quiet - bare)", "features"),
            ("= access log + 10 % sampled spans exported (egress - quiet)", "observers_out"),
            ("flat: the same checks in one coroutine over plain aiohttp (bench/flat.py)", "flat"),
            ("= the checks on plain aiohttp (flat - forwarder)", "checks_flat"),
            ("= egress's scaffolding around the same checks (quiet - flat)", "scaffolding"),
            ("flat + the access log and sampled spans (flat + egress - quiet): the least the promised "
             "checks and observability cost on aiohttp", "flat_observed"),
            ("floor-proxy: the forwarder + orjson + jsonschema-rs on every body, nothing else", "floor-proxy")]
    summaries = result["summary"]
    for label, key in rows:
        if all(key in s for s in summaries.values()):  # a run from before flat existed has no flat rows
            lines.append(f"| {label} | " + " | ".join(f"{s[key]:.0f}" for s in summaries.values()) + " |")
    if parse_validate:
        lines.append("| (of the features: orjson parse + jsonschema-rs validate, in-process) | "
                     + " | ".join(f"{parse_validate.get(b, float('nan')):.0f}" for b in summaries) + " |")
        for label, key in (("floor-proxy", "floor-proxy"), ("flat", "flat"),
                           ("flat + access log and spans", "flat_observed"),
                           ("egress-quiet", "egress-quiet"), ("egress", "egress")):
            if all(key in s for s in summaries.values()):
                lines.append(f"| {label} / floor (forwarder + that parse and validate) | " + " | ".join(
                    f"{s[key] / (s['forwarder'] + parse_validate[b]):.2f}x" if b in parse_validate else "n/a"
                    for b, s in summaries.items()) + " |")
    return lines


def check_refuses(name: str, url: str, headers: dict[str, str]) -> None:
    """A measuring proxy must be the check it claims: the valid body answered 200, its invalid twin refused."""
    import urllib.error
    import urllib.request

    for path, want in ((fixtures.PATHS["charge"], 200), (fixtures.PATHS["charge_invalid"], 502)):
        try:
            got = urllib.request.urlopen(urllib.request.Request(url + path, headers=headers), timeout=5).status
        except urllib.error.HTTPError as err:
            got = err.code
        if got != want:
            raise RuntimeError(f"{name} answered {got} to {path}, not {want}")
