"""Papercuts a newcomer meets in the first hour: each with the outcome and its reason."""

import asyncio
import json
import subprocess
import sys

import pytest
import requests
import yaml

from tests.process import EgressProcess

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def egress(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "egress", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_help_is_for_users_not_an_internal_comment():
    result = egress("--help")
    assert result.returncode == 0
    assert "nothing else lives here" not in result.stdout
    assert "outbound proxy" in result.stdout
    assert "adds up all workers" in " ".join(egress("serve", "--help").stdout.split())


@pytest.mark.parametrize("args,code,expected", [
    (("payments", "GET", "/charges/ch_1", "200", "demo/charge.json"), 0, "valid"),
    (("payments", "GET", "/charges/ch_1", "200", "no/such/file.json"), 2, "cannot read"),
    (("payments", "DELETE", "/charges/ch_1", "200", "demo/charge.json"), 2, "no operation matches"),
    (("payments", "GET", "/charges/ch_1", "302", "demo/charge.json"), 0, "valid"),  # default: {type: object}
    (("nope", "GET", "/charges/ch_1", "200", "demo/charge.json"), 2, "no upstream 'nope'"),
], ids=["valid-0", "missing-file-2", "no-operation-2", "default-status-0", "no-upstream-2"])
def test_contracts_check_exit_codes_are_0_1_2(args, code, expected):
    result = egress("contracts", "check", *args)
    assert result.returncode == code, result.stdout + result.stderr
    assert expected in result.stdout + result.stderr


@pytest.mark.parametrize("credential,expected", [
    ({"header": "Authorization", "valeu": "Bearer s3cr3t-MARKER"}, "credential: unknown key(s) 'valeu'"),
    ({"header": "Authorization"}, "credential needs exactly one of value | value_file | oauth2"),
    ({"header": "Authorization", "value": 424242}, "credential.value must be"),
], ids=["misspelled-key-named", "missing-key-named", "bad-value-hidden"])
def test_credential_problems_name_the_key_never_the_value(tmp_path, credential, expected):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"upstreams": [{"name": "p", "url": "https://p.example/v1",
                                                  "credential": credential}]}))
    result = egress("check-config", "--config", str(cfg))
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr
    assert "s3cr3t-MARKER" not in result.stderr and "424242" not in result.stderr


async def test_refused_reload_logs_key_paths_never_values(tmp_path):
    doc = {"upstreams": [{"name": "p", "url": "https://p.example/v1", "timeout": {"total": 5}}]}
    proc = await EgressProcess(doc, tmp_path).astart()
    try:
        bad = yaml.safe_load(proc.config.read_text())
        bad["upstreams"][0]["timeout"]["total"] = -987654
        bad["upstreams"][0]["credential"] = {"header": "Authorization", "valeu": "Bearer s3cr3t-MARKER"}
        proc.config.write_text(yaml.safe_dump(bad))
        resp = await asyncio.to_thread(requests.post, proc.admin_url + "/admin/reload", timeout=20)
        assert resp.status_code == 422 and resp.json()["reloaded"] is False
        await asyncio.sleep(0.2)
    finally:
        proc.stop()
    [line] = [json.loads(x) for x in proc.logs().splitlines() if '"reload refused"' in x]
    assert line["keys"] == ["upstreams[0].credential", "upstreams[0].timeout.total"]
    assert "-987654" not in json.dumps(line) and "s3cr3t" not in proc.logs()


def test_demo_config_mentions_no_makefile():
    text = (REPO / "config" / "egress.yaml").read_text()
    assert "make demo" not in text and "scripts/serve" in text
    assert not (REPO / "Makefile").exists()
