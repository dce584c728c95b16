"""Large OpenAPI documents at production scale: start time, RSS, reload peak, `contracts check`.

    .venv/bin/python bench/contracts_scale.py [--shared ../shared] [--operations 10000] [--out FILE]

Every number comes from a fresh process, so one measurement never inherits another's heap:

- `load`: a child that only loads the contract (`load_contract`, the upstream's options):
  seconds, and the child's RSS peak (VmHWM) and RSS after load (VmRSS), both whole process;
- `reload`: the same child loads it a second time while the first is still referenced (what a
  reload does: the old generation serves until the new one is ready): peak / one-generation RSS;
- `serve`: `egress serve` with the document as an upstream's contract, until `/readyz` answers
  200 (start), its RSS, then `POST /admin/reload` and the process's RSS peak (VmHWM) after it;
- `check`: `egress contracts check` on one Stripe body (a 396-byte fixture), wall time and the
  child's peak RSS.
Documents: Stripe's spec3.yaml as published (YAML), the same as JSON, and a generated document of
`--operations` operations (10,000 by default) over 2,000 component schemas shaped like Stripe's
(expandable `anyOf` + `nullable`, lists, a shared error).  `--workers N` (one compile before the
fork) is measured by `bench/bench.py` once the fork model is in; it is not here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from procs import Processes, free_port, wait_http  # noqa: E402

CHILD = r"""
import json, sys, time
from pathlib import Path
from types import SimpleNamespace
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
path, base, times = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
import egress.contracts.loader as loader
base_rss = status("VmRSS:")
kept, seconds = [], []
for _ in range(times):
    t = time.perf_counter()
    kept.append(loader.load_contract(path, contracts_dir=path.parent, base_path=base,
                                     options=SimpleNamespace(nullable="lenient", formats="assert")))
    seconds.append(time.perf_counter() - t)
    if len(kept) == 1:
        one_rss, one_hwm = status("VmRSS:"), status("VmHWM:")
import resource
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "operations": len(kept[0].operations), "base_rss_mb": base_rss,
                  "rss_mb": one_rss, "hwm_mb": one_hwm, "final_hwm_mb": status("VmHWM:"),
                  "final_rss_mb": status("VmRSS:")}))
"""


def child_load(path: Path, base: str, times: int) -> dict:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), base, str(times)], check=True,
                         capture_output=True, text=True, cwd=REPO)
    result = json.loads(out.stdout)
    result["process_seconds"] = time.perf_counter() - started
    return result


def synthetic(path: Path, operations: int, schemas: int = 2000) -> Path:
    """An OpenAPI 3.0 document of `operations` operations shaped like Stripe's (refs between
    resources, expandable anyOf + nullable, lists, one shared error schema)."""
    comps = {"error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "properties": {"type": {"type": "string"}, "message": {"type": "string", "maxLength": 5000}}}}}}
    for i in range(schemas):
        props = {"id": {"type": "string", "maxLength": 5000}, "object": {"type": "string", "enum": [f"r{i}"]},
                 "created": {"type": "integer"}, "metadata": {"type": "object", "nullable": True,
                                                              "additionalProperties": {"type": "string"}},
                 "status": {"type": "string", "enum": ["a", "b", "c"], "nullable": True}}
        for j in (1, 7, 31):
            props[f"rel{j}"] = {"nullable": True, "anyOf": [{"type": "string", "maxLength": 5000},
                                                            {"$ref": f"#/components/schemas/r{(i + j) % schemas}"}]}
        comps[f"r{i}"] = {"type": "object", "required": ["id", "object"], "properties": props, "x-resourceId": f"r{i}"}
    paths = {}
    for n in range(operations):
        r = n % schemas
        ok = ({"$ref": f"#/components/schemas/r{r}"} if n % 3 else
              {"type": "object", "required": ["data", "has_more", "object", "url"], "properties": {
                  "data": {"type": "array", "items": {"$ref": f"#/components/schemas/r{r}"}},
                  "has_more": {"type": "boolean"}, "object": {"enum": ["list"], "type": "string"},
                  "url": {"type": "string", "maxLength": 5000}}})
        paths[f"/v1/res{n}/{{id}}"] = {"get": {"responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": ok}}},
            "default": {"description": "error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/error"}}}}}}}
    path.write_text(json.dumps({"openapi": "3.0.0", "info": {"title": "synthetic", "version": "1"},
                                "servers": [{"url": "https://api.example.com/"}], "paths": paths,
                                "components": {"schemas": comps}}))
    return path


def _config(work: Path, doc: Path, port: int, admin: int) -> Path:
    cfg = work / f"egress-{doc.stem}.yaml"
    cfg.write_text(json.dumps({
        "listen": f"127.0.0.1:{port}", "admin_listen": f"127.0.0.1:{admin}", "contracts_dir": str(doc.parent),
        "callers": {"header": "X-Egress-Caller", "required": False}, "breaker_store": "memory",
        "upstreams": [{"name": "vendor", "url": "http://127.0.0.1:9/v1", "callers": ["*"], "contract": doc.name,
                       "mode": "enforce", "allow_private_addresses": True}]}))
    return cfg


def _status(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(work: Path, doc: Path, procs: Processes) -> dict:
    port, admin = free_port(), free_port()
    cfg = _config(work, doc, port, admin)
    egress = REPO / ".venv" / "bin" / "egress"
    started = time.perf_counter()
    p = procs.start(f"egress-{doc.stem}", [str(egress), "serve", "--config", str(cfg), "--workers", "1"])
    deadline = started + 300
    while time.perf_counter() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"egress exited with {p.returncode}: {(work / 'logs').glob('*.log')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    ready = time.perf_counter() - started
    rss, hwm = _status(p.pid, "VmRSS:"), _status(p.pid, "VmHWM:")
    fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
    ready_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    t = time.perf_counter()
    req = urllib.request.Request(f"http://127.0.0.1:{admin}/admin/reload", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=300) as resp:
        reload_status = resp.status
    reloaded = time.perf_counter() - t
    result = {"ready_seconds": ready, "ready_cpu_seconds": ready_cpu, "rss_mb": rss, "hwm_mb": hwm, "reload_seconds": reloaded,
              "reload_status": reload_status, "after_reload_rss_mb": _status(p.pid, "VmRSS:"),
              "reload_hwm_mb": _status(p.pid, "VmHWM:")}
    procs.stop_all()
    return result


STRIPE_BODY = {"id": "cus_1", "object": "customer", "balance": 0, "created": 1, "currency": None,
               "default_source": None, "delinquent": False, "description": None, "discount": None,
               "email": None, "invoice_prefix": "ABC", "invoice_settings": {"custom_fields": None,
               "default_payment_method": None, "footer": None, "rendering_options": None},
               "livemode": False, "metadata": {}, "name": None, "next_invoice_sequence": 1,
               "phone": None, "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None}


def check_cli(work: Path, doc: Path) -> dict:
    cfg = _config(work, doc, free_port(), free_port())
    body = work / "customer.json"
    body.write_bytes(json.dumps(STRIPE_BODY, separators=(",", ":")).encode())
    before = os.wait4 if hasattr(os, "wait4") else None
    started = time.perf_counter()
    p = subprocess.Popen([str(REPO / ".venv" / "bin" / "egress"), "contracts", "check", "--config", str(cfg),
                          "vendor", "GET", "/customers/cus_1", "200", str(body)], stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, usage = before(p.pid, 0)
    return {"seconds": time.perf_counter() - started, "maxrss_mb": usage.ru_maxrss / 1024,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "exit": os.waitstatus_to_exitcode(status), "body_bytes": body.stat().st_size, "first_line": out.splitlines()[0]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--operations", type=int, default=10_000)
    ap.add_argument("--out", default=str(HERE / "results" / "contracts_scale.json"))
    args = ap.parse_args()
    stripe = Path(args.shared) / "conformance" / "openapi" / "stripe.spec3.yaml"
    out: dict = {"python": sys.version.split()[0], "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
                 "loadavg": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="contracts-scale-") as tmp:
        work = Path(tmp)
        docs = {}
        (work / "docs").mkdir()
        if stripe.is_file():
            docs["stripe-yaml"] = (work / "docs" / "stripe.spec3.yaml", "/v1")
            docs["stripe-yaml"][0].write_bytes(stripe.read_bytes())
            import yaml_rs  # the same parse the loader does
            docs["stripe-json"] = (work / "docs" / "stripe.spec3.json", "/v1")
            docs["stripe-json"][0].write_text(json.dumps(yaml_rs.loads(stripe.read_text(), parse_datetime=False)))
        else:
            print(f"{stripe} not found: Stripe rows skipped", file=sys.stderr)
        docs["synthetic"] = (synthetic(work / "docs" / f"synthetic{args.operations}.json", args.operations), "/v1")
        (work / "logs").mkdir()
        procs = Processes(work / "logs")
        try:
            for name, (path, base) in docs.items():
                row = {"bytes": path.stat().st_size, "load": child_load(path, base, 1),
                       "reload": child_load(path, base, 2), "serve": serve(work, path, procs)}
                r = row["reload"]
                row["reload"]["peak_over_one"] = (r["final_hwm_mb"]) / r["rss_mb"]
                s = row["serve"]
                s["reload_peak_over_one"] = s["reload_hwm_mb"] / s["rss_mb"]
                out[name] = row
                print(f"{name}: {row['load']['operations']} operations, load {row['load']['seconds'][0]:.2f} s "
                      f"(process {row['load']['process_seconds']:.2f} s, CPU {row['load']['cpu_seconds']:.2f} s), "
                      f"serve ready CPU {s['ready_cpu_seconds']:.2f} s, RSS {row['load']['rss_mb']:.0f} MB "
                      f"(peak {row['load']['hwm_mb']:.0f}); serve ready {s['ready_seconds']:.2f} s at "
                      f"{s['rss_mb']:.0f} MB, reload peak {s['reload_hwm_mb']:.0f} MB "
                      f"({s['reload_peak_over_one']:.2f}x); two generations in one process peak "
                      f"{r['final_hwm_mb']:.0f} MB ({r['peak_over_one']:.2f}x)", flush=True)
            if "stripe-yaml" in docs:
                out["check"] = check_cli(work, docs["stripe-yaml"][0])
                print(f"contracts check (Stripe, {out['check']['body_bytes']} B): {out['check']['seconds']:.2f} s "
                      f"(CPU {out['check']['cpu_seconds']:.2f} s), "
                      f"{out['check']['maxrss_mb']:.0f} MB, exit {out['check']['exit']}: {out['check']['first_line']}")
        finally:
            procs.stop_all()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
