"""CLI helpers: lint_dir, Recorder + learn, check_file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from egress.contracts import load_contract
from egress.contracts.check import check_file
from egress.contracts.learn import learn
from egress.contracts.lint import lint_dir
from egress.contracts.record import Recorder

from .helpers import compact, write

DEMO = Path(__file__).resolve().parents[3] / "contracts"


def test_lint_demo_is_clean() -> None:
    assert lint_dir(DEMO) == []


@pytest.mark.parametrize(("files", "fragment"), [
    ({"c.yaml": compact({"$ref": "https://x/y.json"})}, "is remote"),
    ({"c.yaml": compact({"type": "strin"})}, "contracts/c.yaml#/operations/GET ~1x/responses/200/schema/type"),
    ({"schemas/a.json": {"minimum": "zero"}}, "contracts/schemas/a.json#/minimum"),
    ({"schemas/a.json": {"$ref": "../../outside.json"}}, "escapes the contracts directory"),
    ({"schemas/bad.json": "{not json"}, "contracts/schemas/bad.json: invalid JSON"),
    ({"api.yaml": {"openapi": "3.0.3", "info": {"title": "t"}, "paths": {}}}, "contracts/api.yaml#"),
], ids=["remote-ref", "inline-meta-schema", "file-meta-schema", "escaping-ref", "unparsable", "openapi-invalid"])
def test_lint_problems(tmp_path, files, fragment) -> None:
    write(tmp_path / "contracts", files)
    problems = lint_dir(tmp_path / "contracts")
    assert any(fragment in p for p in problems), problems


def test_recorder_is_private_and_bounded(tmp_path) -> None:
    rec = Recorder(tmp_path / "samples", max_files_per_operation=2, max_bytes=100)
    assert rec.record("payments", "GET /charges/{id}", 200, "application/json", b'{"id": "ch_1"}')
    assert not rec.record("payments", "GET /charges/{id}", 200, "application/json", b"x" * 101)
    assert rec.record("payments", "GET /charges/{id}", 404, "application/json", b'{"error": {}}')
    assert not rec.record("payments", "GET /charges/{id}", 200, "application/json", b"{}")
    files = [p for p in (tmp_path / "samples").rglob("*") if p.is_file()]
    assert len(files) == 4 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    dirs = [p for p in (tmp_path / "samples").rglob("*") if p.is_dir()] + [tmp_path / "samples"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in dirs)
    assert all(".." not in p.name for p in files)


def test_learn_drafts_a_contract_that_loads_and_accepts_the_samples(tmp_path) -> None:
    rec = Recorder(tmp_path / "samples")
    bodies = [{"id": "ch_1", "amount": 5, "tags": ["a"]}, {"id": "ch_2", "amount": 7, "note": None}]
    for body in bodies:
        rec.record("payments", "GET /charges/{id}", 200, "application/json", json.dumps(body).encode())
    rec.record("payments", "GET /charges/{id}", 404, "text/plain", b"nope")
    draft = learn(tmp_path / "samples")
    response = draft["operations"]["GET /charges/{id}"]["responses"]
    assert response["404"] == {"content_type": "text/plain"}
    assert response["200"]["schema"]["required"] == ["amount", "id"]
    write(tmp_path / "contracts", {"learned.yaml": yaml.safe_dump(draft)})
    op = load_contract(tmp_path / "contracts" / "learned.yaml", contracts_dir=tmp_path / "contracts").match("GET", "/charges/x")
    assert all(op.check(200, "application/json", json.dumps(b).encode()).outcome == "valid" for b in bodies)


@pytest.mark.parametrize(("method", "path", "status", "body", "code", "first"), [
    ("GET", "/charges/ch_1", 200, {"id": "ch_1", "amount": 1, "currency": "usd", "status": "pending",
                                   "created": "2024-05-01T10:00:00Z"}, 0, "GET /charges/{id} 200: valid"),
    ("GET", "/charges/ch_1", 200, {"id": "ch_1"}, 1, "GET /charges/{id} 200: violated (contract_violation)"),
    ("GET", "/refunds/1", 200, {}, 2, "no operation matches GET /refunds/1"),
], ids=["valid", "violated", "no-operation"])
def test_check_file(tmp_path, method, path, status, body, code, first) -> None:
    contract = load_contract(DEMO / "payments.yaml", contracts_dir=DEMO)
    file = tmp_path / "body.json"
    file.write_text(json.dumps(body))
    exit_code, lines = check_file(contract, method, path, status, file)
    assert (exit_code, lines[0]) == (code, first)
    if code == 1:
        assert "  /: missing required property 'amount' [required at /required]" in lines


def test_recorder_bounds_distinct_operations(tmp_path):
    from egress.contracts.record import Recorder
    rec = Recorder(tmp_path / "s", max_files_per_operation=2, max_bytes=100, max_operations=3)
    written = [rec.record("up", f"GET /items/{i}", 200, "application/json", b"{}") for i in range(10)]
    assert written == [True] * 3 + [False] * 7
    assert len(list((tmp_path / "s").rglob("*.meta.json"))) == 3
