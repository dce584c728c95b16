"""Where egress's CPU goes, by subtraction, in one run: the full pipeline beside itself with parts off.

    bench/run --only ablation        (also part of the full run, after throughput)

Four one-process proxies pinned to the same CPU, measured round-robin (wrk -t1 -c32, the
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

Subtractions (same run, same CPU): egress - egress-quiet = access log + sampled spans;
egress-quiet - egress-bare = caller identity, sanitizing lists, credential injection and the
contract check (parse + validate, of which the floor's parse+validate is the part any validating
proxy pays); egress-bare - forwarder = what the pipeline itself costs on top of aiohttp (routing,
the exchange record, resilience wrapper, the pass-through decision, response headers, metrics).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import fixtures
import loads
from procs import cpu_seconds, free_port, wait_http

TARGETS = ("forwarder", "egress", "egress-quiet", "egress-bare")


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
    """Start egress-quiet and egress-bare (the others are the throughput scenario's)."""
    base_env = bench.egress_env(bench.otlp_port)
    for name in ("egress-quiet", "egress-bare"):
        port, aport = free_port(), free_port()
        cfg_path = bench.work / f"{name}.yaml"
        if name == "egress-quiet":
            cfg = fixtures.egress_config(cfg_path, port=port, admin_port=aport, provider_port=bench.provider_port,
                                         violations_upstream=False)
        else:
            cfg = bare_config(cfg_path, port=port, admin_port=aport, provider_port=bench.provider_port)
        p = bench.procs.start(name, [str(egress_bin), "serve", "--config", str(cfg), "--workers", "1"],
                              cpus=bench.cpus("proxy"), env=quiet_env(base_env))
        wait_http(f"http://127.0.0.1:{aport}/healthz", 60, p)
        wait_http(f"http://127.0.0.1:{port}/pay/charges/ch_ok", 20, p)
        bench.targets[name] = f"http://127.0.0.1:{port}/pay"
        bench.pids[name] = p.pid


def run(bench, egress_bin: Path, headers: dict[str, str], bodies: tuple[str, ...], say) -> dict:
    if "egress-bare" not in bench.targets:
        start(bench, egress_bin)
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
               "pipeline": ("egress-bare", "forwarder")}


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
            ("= access log + 10 % sampled spans exported (egress - quiet)", "observers_out")]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(f"{s[key]:.0f}" for s in result["summary"].values()) + " |")
    if parse_validate:
        lines.append("| (of the features: orjson parse + jsonschema-rs validate, in-process) | "
                     + " | ".join(f"{parse_validate.get(b, float('nan')):.0f}" for b in result["summary"]) + " |")
    return lines
