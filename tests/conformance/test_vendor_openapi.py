"""Twilio's (OpenAPI 3.0.1) and OpenAI's (3.1.0) published documents load unchanged as contracts;
the examples they carry are checked against their response schemas; mutated examples are caught."""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from egress.contracts import load_contract
from egress.contracts.documents import read_document, resolve_pointer

from . import vendors
from .suite import OPENAPI

pytestmark = pytest.mark.skipif(not OPENAPI.is_dir(), reason="shared/conformance not beside the repo")

VENDORS = {
    # file: (upstream base path, server path in the document)
    "twilio_api_v2010.json": ("/2010-04-01", ""),
    "openai.openapi.yaml": ("/v1", "/v1"),
}
#: examples whose outcome is not "valid", by vendor: the vendors' own examples disagree with their
#: schemas (Twilio: relative URLs under `format: uri`, prices as strings under `type: number`,
#: placeholder SIDs failing their patterns; OpenAI: examples missing required fields, ints vs
#: strings).  Exact counts so that any change in verdicts shows up here.
EXPECTED = {"twilio_api_v2010.json": {"examples": 287, "valid": 140},
            "openai.openapi.yaml": {"examples": 244, "valid": 162}}

_LOADED: dict[str, Any] = {}


def _load(name: str):
    if name not in _LOADED:
        base, _ = VENDORS[name]
        started = time.perf_counter()
        contract = load_contract(OPENAPI / name, contracts_dir=OPENAPI, base_path=base)
        _LOADED[name] = (contract, read_document(OPENAPI / name), time.perf_counter() - started)
    return _LOADED[name]


def _examples(doc: dict[str, Any], name: str) -> Iterator[tuple[str, str, int, str, Any, Any]]:
    """(method, relative template, status, media type, example value, response schema) of the
    vendor document `name` (a file in conformance/openapi): vendors.examples, by file."""
    vendor = next(key for key, v in vendors.VENDORS.items() if v.file == name)
    yield from vendors.examples(doc, vendor)


@pytest.mark.parametrize("name", list(VENDORS), ids=["twilio-3.0.1", "openai-3.1.0"])
def test_document_loads_and_compiles(name: str) -> None:
    contract, _, seconds = _load(name)
    assert len(contract.operations) > 150
    assert not contract.skipped
    print(f"\n{name}: {len(contract.operations)} operations, load+compile {seconds:.3f}s "
          f"(compile_seconds={contract.compile_seconds:.3f})")


@pytest.mark.parametrize("name", list(VENDORS), ids=["twilio-3.0.1", "openai-3.1.0"])
def test_examples_against_their_schemas(name: str) -> None:
    contract, doc, _ = _load(name)
    outcomes, keywords = Counter(), Counter()
    for method, rel, status, mtype, value, _ in _examples(doc, name):
        op = contract.match(method, vendors._concrete(rel))
        assert op is not None, f"{method} {rel} does not match its own operation"
        result = op.check(status, mtype, orjson.dumps(value))
        assert result.reason in (None, "contract_violation"), (method, rel, result)
        outcomes[result.outcome] += 1
        keywords.update(v.keyword for v in result.violations)
    print(f"\n{name}: {dict(outcomes)}; violation keywords {dict(keywords)}")
    assert sum(outcomes.values()) == EXPECTED[name]["examples"]
    assert outcomes["valid"] == EXPECTED[name]["valid"]


def _schema_node(doc: dict[str, Any], schema: Any) -> Any:
    for _ in range(8):
        if isinstance(schema, dict) and "$ref" in schema:
            schema = resolve_pointer(doc, schema["$ref"][1:])
    return schema


def _mutations(doc: dict[str, Any], value: Any, schema: Any) -> Iterator[tuple[str, Any, str, str]]:
    """(label, mutated body, expected instance path, expected keyword) on top-level fields."""
    node = _schema_node(doc, schema)
    if not isinstance(value, dict) or not isinstance(node, dict):
        return
    props = node.get("properties") or {}
    for field in node.get("required") or []:
        if field in value:
            yield "required field removed", {k: v for k, v in value.items() if k != field}, "", "required"
            break
    for field, sub in props.items():
        sub = _schema_node(doc, sub)
        kind = sub.get("type") if isinstance(sub, dict) else None
        if field in value and kind == "string" and not sub.get("nullable"):
            yield "null where not nullable", {**value, field: None}, f"/{field}", "type"
            yield "type changed", {**value, field: 12345}, f"/{field}", "type"
            break
        if field in value and kind == "string" and sub.get("nullable") and "enum" not in sub:
            yield "type changed", {**value, field: 12345}, f"/{field}", "type"
            break


@pytest.mark.parametrize("name", list(VENDORS), ids=["twilio-3.0.1", "openai-3.1.0"])
def test_mutated_examples_are_violations_at_the_right_pointer(name: str) -> None:
    contract, doc, _ = _load(name)
    checked = Counter()
    for method, rel, status, mtype, value, schema in _examples(doc, name):
        op = contract.match(method, vendors._concrete(rel))
        if op.check(status, mtype, orjson.dumps(value)).outcome != "valid":
            continue
        for label, mutated, path, keyword in _mutations(doc, copy.deepcopy(value), schema):
            result = op.check(status, mtype, orjson.dumps(mutated))
            assert result.outcome == "violated", (label, method, rel)
            assert any(v.instance_path == path and v.keyword == keyword for v in result.violations), \
                (label, method, rel, result.violations)
            checked[label] += 1
    print(f"\n{name}: mutations checked {dict(checked)}")
    assert checked["type changed"] > 20
    if name.startswith("openai"):
        assert checked["required field removed"] > 20 and checked["null where not nullable"] > 20
