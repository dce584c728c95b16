"""Start-up fails fast, with a clear message and exit 1: bad config, bad contract, port in use."""

import socket
import subprocess
import sys

import pytest
import yaml

from tests.process import free_port


def serve(config, timeout=20):
    return subprocess.run([sys.executable, "-m", "egress", "serve", "--config", str(config), "--workers", "1"],
                          capture_output=True, text=True, timeout=timeout)


def write(tmp_path, doc):
    path = tmp_path / "egress.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


BASE = {"upstreams": [{"name": "pay", "url": "https://pay.example/v1"}]}


@pytest.mark.parametrize("doc,contract,expected", [
    ({**BASE, "upstreams": [{"name": "pay", "url": "https://pay.example/v1", "timeout": {"total": -1}}]}, None,
     "upstreams[0].timeout.total must be > 0, got -1"),
    ({**BASE, "upstreams": [{"name": "pay", "url": "https://pay.example/v1", "contract": "nope.yaml"}]}, None,
     "upstreams[0].contract: file not found"),
    ({**BASE, "upstreams": [{"name": "pay", "url": "https://pay.example/v1", "contract": "c.yaml"}]},
     "operations:\n  GET /x:\n    responses:\n      '200': {schema: {$ref: 'https://evil.example/s.json'}}\n",
     "remote"),
    ({**BASE, "upstreams": [{"name": "pay", "url": "https://pay.example/v1", "contract": "c.yaml"}]},
     "operations: [unclosed", "c.yaml"),
], ids=["bad-value", "missing-contract", "remote-ref-contract", "unparsable-contract"])
def test_bad_config_or_contract(tmp_path, doc, contract, expected):
    doc = {**doc, "listen": f"127.0.0.1:{free_port()}", "admin_listen": f"127.0.0.1:{free_port()}"}
    if contract is not None:
        (tmp_path / "c.yaml").write_text(contract)
    result = serve(write(tmp_path, {**doc, "contracts_dir": "."}))
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr


def test_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        doc = {**BASE, "listen": f"127.0.0.1:{port}", "admin_listen": f"127.0.0.1:{free_port()}"}
        result = serve(write(tmp_path, doc))
    assert result.returncode == 1
    assert "address already in use" in result.stderr
    assert "Unclosed" not in result.stderr and "Traceback" not in result.stderr


def test_check_config_lists_every_error(tmp_path):
    doc = {"upstreams": [{"name": "a", "url": "https://x/v1", "timeout": {"total": -1}},
                         {"name": "b", "url": "https://y/v1", "retry": {"attempts": 0}}]}
    result = subprocess.run([sys.executable, "-m", "egress", "check-config", "--config", str(write(tmp_path, doc))],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert "upstreams[0].timeout.total" in result.stderr and "upstreams[1].retry.attempts" in result.stderr
