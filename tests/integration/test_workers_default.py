"""`egress serve` without `--workers`: one worker per CPU the process may use, seen from outside.

The CPU affinity is set the way an operator does (`taskset`), and the answer read from the
admin port: a forked set says how many workers answered `/readyz`, a single process does not.
"""

import os
import shutil
import sys

import pytest

from tests.integration.test_workers import serve_and_stop
from tests.process import free_port

AFFINITY = len(os.sched_getaffinity(0))
CASES = [
    # id, command prefix, the workers /readyz reports (None: one process, no supervisor)
    ("pinned-to-one-cpu", ["taskset", "-c", str(min(os.sched_getaffinity(0)))], None),
    ("every-cpu-of-the-affinity", [], AFFINITY if AFFINITY > 1 else None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_default_workers_follow_the_cpu_affinity(case, tmp_path):
    _, prefix, workers = case
    if prefix and not shutil.which("taskset"):
        pytest.skip("taskset is not installed")
    port, admin = free_port(), free_port()
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\n"
                   "upstreams: [{name: pay, url: 'https://pay.example/v1', callers: ['*']}]\n")
    ready, code, log = serve_and_stop([*prefix, sys.executable, "-m", "egress", "serve", "--config", str(cfg)],
                                      tmp_path, port, admin)
    assert ready.get("workers") == workers, ready
    assert code == 0, log[-2000:]
