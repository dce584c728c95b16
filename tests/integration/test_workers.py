"""`--workers N`: compiled once in the parent and forked; the admin port adds up every
worker; start-up does not depend on the working directory; SIGTERM and reload reach all."""

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.fakes import FakeProvider
from tests.process import EgressProcess, free_port

REPO = Path(__file__).resolve().parents[2]
EGRESS = Path(sys.executable).parent / "egress"  # the console script, as a user runs it


def wait_ready(admin_url: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            resp = requests.get(admin_url + "/readyz", timeout=2)
            if resp.status_code == 200:
                return resp.json()
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError("not ready")


def serve_and_stop(cmd: list[str], cwd: Path, port: int, admin: int) -> tuple[dict, int, str]:
    """Run `egress serve` as `cmd` in `cwd` (output to cwd/serve.log); once /readyz answers,
    check that it refuses an unknown destination (403 destination_not_allowed), then SIGTERM it.
    Returns (what /readyz said, the exit code, the log)."""
    with open(cwd / "serve.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = wait_ready(f"http://127.0.0.1:{admin}")
            resp = requests.get(f"http://127.0.0.1:{port}/nowhere", headers={"X-Egress-Caller": "a"}, timeout=5)
            assert resp.status_code == 403 and resp.json()["reason"] == "destination_not_allowed"
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20)
    return ready, code, (cwd / "serve.log").read_text()


def counter(text: str, outcome: str) -> float:
    total = 0.0
    for m in re.finditer(r'^egress_requests_total\{(.*)\} (\S+)$', text, re.M):
        if f'outcome="{outcome}"' in m.group(1):
            total += float(m.group(2))
    return total


@pytest.fixture
async def provider():
    fake = await FakeProvider().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def workers(provider, tmp_path):
    doc = {"callers": {"required": False}, "upstreams": [{
        "name": "pay", "url": f"{provider.url}/v1", "callers": ["*"], "allow_private_addresses": True,
        "retry": {"attempts": 1}}]}
    proc = await EgressProcess(doc, tmp_path, args=("--workers", "2")).astart()
    await asyncio.to_thread(wait_ready, proc.admin_url)
    yield proc
    proc.stop()


async def test_metrics_and_inventory_add_up_all_workers(workers, provider):
    def traffic():
        for i in range(12):  # a new connection each: the kernel spreads them over the workers
            assert requests.get(f"{workers.url}/pay/items/{i}", timeout=10).status_code == 200
            assert requests.get(f"{workers.url}/nowhere/{i}", timeout=10).status_code == 403
        scrapes = [requests.get(workers.admin_url + "/metrics", timeout=10).text for _ in range(8)]
        inventories = [requests.get(workers.admin_url + "/admin/inventory", timeout=10).json() for _ in range(4)]
        return scrapes, inventories

    scrapes, inventories = await asyncio.to_thread(traffic)
    assert [counter(t, "ok") for t in scrapes] == [12.0] * 8, scrapes[0][:3000]
    assert [counter(t, "destination_not_allowed") for t in scrapes] == [12.0] * 8
    assert all('egress_workers{state="answering"} 2.0' in t for t in scrapes)
    for inv in inventories:
        [pay] = inv["upstreams"]
        assert inv["workers"] == 2 and pay["calls"] == 12
        assert sum(op["calls"] for op in pay["operations"]) == 12
        assert inv["denied_destinations"][0]["host"] == "nowhere"
        assert inv["denied_destinations"][0]["count"] == 12
    assert provider.hits == 12


async def test_reload_and_sigterm_reach_every_worker(workers):
    resp = await asyncio.to_thread(requests.post, workers.admin_url + "/admin/reload", timeout=20)
    assert resp.status_code == 200 and resp.json()["reloaded"] is True
    ready = await asyncio.to_thread(wait_ready, workers.admin_url)
    assert ready["workers"] == 2 and ready["generation"] >= 2
    workers.signal(signal.SIGTERM)
    await asyncio.sleep(0.2)
    code = await asyncio.to_thread(workers.proc.wait, 20)
    assert code == 0
    logs = workers.logs()
    assert logs.count('"msg":"stopped"') == 2 and "Traceback" not in logs


def test_start_up_does_not_depend_on_the_working_directory(tmp_path):
    if not EGRESS.exists():
        pytest.skip("no egress console script next to this interpreter")
    checkout = tmp_path / "egress"  # a folder holding a checkout named `egress`
    shutil.copytree(REPO / "config", checkout / "config")
    (checkout / "egress" / "config").mkdir(parents=True)
    port, admin = free_port(), free_port()
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\n"
                   "upstreams: [{name: pay, url: 'https://pay.example/v1', callers: ['*']}]\n")
    ready, code, text = serve_and_stop([str(EGRESS), "serve", "--config", str(cfg), "--workers", "2"], tmp_path,
                                       port, admin)
    assert ready["workers"] == 2
    assert code == 0 and "Traceback" not in text and "FileNotFoundError" not in text


@pytest.mark.parametrize("busy", ["data", "admin"], ids=["data-port-in-use", "admin-port-in-use"])
def test_a_port_in_use_exits_1_with_a_clear_line(tmp_path, busy):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        used = taken.getsockname()[1]
        port, admin = (used, free_port()) if busy == "data" else (free_port(), used)
        cfg = tmp_path / "busy.yaml"
        cfg.write_text(f"listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\n"
                       "upstreams: [{name: pay, url: 'https://pay.example/v1'}]\n")
        result = subprocess.run([sys.executable, "-m", "egress", "serve", "--config", str(cfg), "--workers", "2"],
                                capture_output=True, text=True, timeout=30, cwd=REPO)
    assert result.returncode == 1
    assert "address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_contract_fails_in_the_parent_before_any_fork(tmp_path):
    (tmp_path / "c.yaml").write_text("operations: [unclosed")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(json.dumps({"listen": f"127.0.0.1:{free_port()}", "admin_listen": f"127.0.0.1:{free_port()}",
                               "contracts_dir": ".", "upstreams": [{"name": "pay", "url": "https://p.example/v1",
                                                                    "contract": "c.yaml"}]}))
    result = subprocess.run([sys.executable, "-m", "egress", "serve", "--config", str(cfg), "--workers", "3"],
                            capture_output=True, text=True, timeout=30, cwd=REPO)
    assert result.returncode == 1
    assert result.stderr.count("upstreams[0].contract") == 1  # once: compiled in the parent only
    assert "Traceback" not in result.stderr


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


async def test_a_worker_that_dies_stops_the_set_and_the_parent_exits_1(workers):
    kids = _children(workers.proc.pid)
    assert len(kids) == 2
    os.kill(kids[0], signal.SIGKILL)  # ours: a child of the egress we started
    code = await asyncio.to_thread(workers.proc.wait, 20)
    assert code == 1
    assert not Path(f"/proc/{kids[1]}").exists() or "Z" in Path(f"/proc/{kids[1]}/stat").read_text().split(")")[1][:3]
    assert '"worker exited; stopping the others"' in workers.logs()
