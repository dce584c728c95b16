"""Stripe's document as published, loaded in a fresh process: start time and RSS within loose
bounds (this machine is shared; `bench/contracts_scale.py` measures them precisely), and a
reload (a second generation while the first still serves) well under twice one generation."""

from __future__ import annotations

import json
import subprocess
import sys

from .suite import OPENAPI, REPO
from .vendors import require_data

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from types import SimpleNamespace
from egress.contracts import load_contract
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
path = Path(sys.argv[1])
kept, seconds = [], []
for _ in range(2):
    t = time.perf_counter()
    kept.append(load_contract(path, contracts_dir=path.parent, base_path="/v1",
                              options=SimpleNamespace(nullable="lenient", formats="assert")))
    seconds.append(time.perf_counter() - t)
    if len(kept) == 1:
        one = status("VmRSS:")
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "one_mb": one, "peak_mb": status("VmHWM:"), "cpu": u.ru_utime + u.ru_stime,
                  "operations": len(kept[0].operations)}))
"""


def test_stripe_loads_fast_and_small_and_reloads_under_twice_one_generation() -> None:
    require_data()
    out = subprocess.run([sys.executable, "-c", CHILD, str(OPENAPI / "stripe.spec3.yaml")], cwd=REPO,
                         capture_output=True, text=True, timeout=300, check=True)
    m = json.loads(out.stdout)
    print(f"\nstripe: {m['operations']} operations, load {m['seconds'][0]:.2f} s, one generation "
          f"{m['one_mb']:.0f} MB, two {m['peak_mb']:.0f} MB, CPU {m['cpu']:.2f} s for both")
    assert m["operations"] == 468
    assert m["seconds"][0] < 20  # measured ~0.5 s alone (was 22-27 s); loose for a shared machine
    assert m["one_mb"] < 400  # measured ~96 MB whole process (was 7.1 GB)
    assert m["peak_mb"] < 2 * m["one_mb"]
