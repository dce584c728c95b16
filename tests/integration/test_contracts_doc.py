"""docs/contracts.md: every example file is written as shown, every command exits as its
`# exit N` comment says with the output shown, and the modes table holds through a proxy."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import base_config

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "contracts.md"
BLOCK = re.compile(r"<!-- (file: \S+|run|run-in-repo|output) -->\n```[a-z]*\n(.*?)```", re.S)


def examples() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text())]


def run_block(text: str, cwd: Path) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        command, _, comment = line.partition("#")
        want = int(re.search(r"exit (\d)", comment).group(1))
        argv = shlex.split(command)
        assert argv[0] == "egress", line
        result = subprocess.run([sys.executable, "-m", "egress", *argv[1:]], cwd=cwd, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == want, f"{line}\n{result.stdout}{result.stderr}"
        out += result.stdout.splitlines()
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("contracts-doc")
    for kind, text in examples():
        if kind.startswith("file: "):
            path = root / kind[len("file: "):]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return root


def test_every_example_has_a_known_marker_and_the_page_has_some():
    kinds = [k.split(":")[0] for k, _ in examples()]
    assert kinds.count("file") >= 7 and kinds.count("run") >= 3 and kinds.count("output") >= 2
    assert DOC.read_text().count("```") == 2 * len(examples()), "a code block without a marker is untested"


RUNS = [i for i, (k, _) in enumerate(examples()) if k in ("run", "run-in-repo")]


@pytest.mark.parametrize("index", RUNS, ids=[f"run-{n}" for n in range(len(RUNS))])
def test_commands_exit_as_documented_with_the_output_shown(written, index):
    kind, text = examples()[index]
    lines = run_block(text, REPO if kind == "run-in-repo" else written)
    following = examples()[index + 1] if index + 1 < len(examples()) else ("", "")
    if following[0] == "output":
        assert lines == following[1].splitlines()


def _body(kind: str):
    return {"valid": {"id": "o_1", "total": 1200, "status": "paid"},
            "violating": {"id": "o_1", "total": "12.00", "status": "lost"}}[kind]


@pytest.mark.parametrize("mode,unmatched,method,body,status,header,reason", [
    ("enforce", "report", "GET", "valid", 200, "valid", None),
    ("enforce", "report", "GET", "violating", 502, None, "contract_violation"),
    ("report", "report", "GET", "violating", 200, "violated", None),
    ("off", "report", "GET", "violating", 200, "unchecked", None),
    ("enforce", "allow", "DELETE", "valid", 200, "unmatched", None),
    ("enforce", "report", "DELETE", "valid", 200, "unmatched", None),
    ("enforce", "block", "DELETE", "valid", 403, None, "operation_not_allowed"),
], ids=["enforce-valid", "enforce-violation-502", "report-passes-violated", "off-unchecked",
        "unmatched-allow", "unmatched-report", "unmatched-block-403"])
async def test_modes_table(written, proxy, provider, mode, unmatched, method, body, status, header, reason):
    async def handler(request):
        return web.json_response(_body(body))

    p = await provider(handler)
    doc = base_config([{"name": "shop", "url": f"{p.url}/v2", "contract": "shop.yaml", "mode": mode,
                        "unmatched": unmatched, "callers": ["*"], "allow_private_addresses": True,
                        "retry": {"attempts": 1}}], contracts_dir="contracts")
    px = await proxy(doc, base_dir=written)
    resp = await px.request(method, "/shop/orders/o_1")
    text = await resp.text()
    assert resp.status == status, text
    assert resp.headers.get("X-Egress-Error") == reason
    if header is not None:
        assert resp.headers["X-Egress-Contract"] == header
    if reason == "contract_violation":
        assert "/total" in text and "12.00" not in text and "lost" not in text  # pointers, never values
    assert p.hits == (0 if reason == "operation_not_allowed" else 1)
