"""Operation.check, the cases that hold what scripts/mutants found unheld in contracts/operation.py.

Each names the breakage it catches: the default bounds on violations and drift (check.py relies
on check_read's drift default), check_read's defaults drifting from Operation.check's, a response
declared with empty content refused, the configured JSON depth ignored by the parser or by the drift
walk, drift lost beside violations, a value the validator cannot represent passed under another
reason, the empty verdict's log pointing nowhere, the CLI's explanation of a refusal lost or garbled.
"""

from __future__ import annotations

import json
import logging

import jsonschema_rs
import pytest

from egress.contracts.check import check_file
from egress.contracts.compiler import CompiledSchema
from egress.contracts.drift import DriftFinder
from egress.contracts.media import select
from egress.contracts.operation import MediaSpec, Operation, ResponseSpec, check_read

from .helpers import compact, contract

MANY = {"type": "object", "properties": {f"f{i}": {"type": "integer"} for i in range(30)}}
NODE = {"$defs": {"n": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"}


def _op(tmp_path, schema):
    return contract(tmp_path, compact(schema)).match("GET", "/x")


def _nested(levels: int, leaf: dict) -> bytes:
    body: dict = leaf
    for _ in range(levels):
        body = {"n": body}
    return json.dumps(body).encode()


def _openapi_with_content(content: dict) -> dict:
    return {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/x": {"get": {
        "responses": {"200": {"description": "ok", "content": content}}}}}}


# id, schema, body, keyword arguments of check(), expected (outcome, reason, len(violations), drift)
CHECKS = [
    ("violations-default-bound-is-10", MANY, json.dumps({f"f{i}": "s" for i in range(30)}).encode(), {},
     ("violated", "contract_violation", 10, ())),
    ("drift-default-bound-is-20", {"type": "object", "properties": {"a": {}}},
     json.dumps({f"d{i:02}": i for i in range(30)}).encode(), {"drift": True},
     ("valid", None, 0, tuple(f"/d{i:02}" for i in range(20)))),
    ("drift-bound-given", {"type": "object", "properties": {"a": {}}},
     json.dumps({f"d{i}": i for i in range(5)}).encode(), {"drift": True, "max_drift": 2},
     ("valid", None, 0, ("/d0", "/d1"))),
    ("depth-given-bounds-the-parse", {"type": "object"}, _nested(5, {}), {"max_depth": 3},
     ("violated", "invalid_json", 0, ())),
    ("depth-given-bounds-the-drift-walk-past-64", NODE, _nested(80, {"zz": 1}), {"max_depth": 100, "drift": True},
     ("valid", None, 0, ("/n" * 80 + "/zz",))),
    ("drift-reported-beside-violations", {"type": "object", "properties": {"a": {"type": "integer"}}},
     b'{"a": "s", "extra": 1}', {"drift": True}, ("violated", "contract_violation", 1, ("/extra",))),
    ("no-drift-is-an-empty-tuple-when-violated", {"type": "object", "properties": {"a": {"type": "integer"}}},
     b'{"a": "s", "extra": 1}', {}, ("violated", "contract_violation", 1, ())),
    ("value-the-validator-cannot-represent", {"type": "string"}, b"1" + b"0" * 5000, {},
     ("violated", "invalid_json", 0, ())),
]


@pytest.mark.parametrize("case", CHECKS, ids=[c[0] for c in CHECKS])
def test_check(tmp_path, case):
    _, schema, body, kwargs, (outcome, reason, count, drift) = case
    result = _op(tmp_path, schema).check(200, "application/json", body, **kwargs)
    assert (result.outcome, result.reason, len(result.violations), result.drift) == (outcome, reason, count, drift)


# check_read called without its bounds (check.check_contract leaves max_drift to it): the same
# verdict as Operation.check without them, and the one the defaults promise
DEFAULTS = [
    ("depth-64", {"type": "object"}, _nested(64, {}), {}, ("violated", "invalid_json", 0, ())),
    ("depth-63-parses", {"type": "object"}, _nested(63, {}), {}, ("valid", None, 0, ())),
    ("violations-10", MANY, json.dumps({f"f{i}": "s" for i in range(30)}).encode(), {},
     ("violated", "contract_violation", 10, ())),
    ("drift-off", {"type": "object", "properties": {"a": {}}}, b'{"extra": 1}', {}, ("valid", None, 0, ())),
    ("drift-20", {"type": "object", "properties": {"a": {}}}, json.dumps({f"d{i:02}": i for i in range(30)}).encode(),
     {"drift": True}, ("valid", None, 0, tuple(f"/d{i:02}" for i in range(20)))),
]


@pytest.mark.parametrize("case", DEFAULTS, ids=[c[0] for c in DEFAULTS])
def test_check_read_defaults_are_operation_checks(tmp_path, case):
    _, schema, body, kwargs, (outcome, reason, count, drift) = case
    op = _op(tmp_path, schema)
    spec = op.response_for(200)
    read = check_read(spec, select(spec.content, "application/json"), True, body, **kwargs)
    assert read == op.check(200, "application/json", body, **kwargs)
    assert (read.outcome, read.reason, len(read.violations), read.drift) == (outcome, reason, count, drift)


# `egress contracts check` prints a refusal's detail under its verdict: the only explanation it gives
DETAILS = [
    ("type-not-declared", _openapi_with_content({"application/json": {"schema": {"type": "object"}},
                                                 "application/xml": {}}), "text/plain", b"hello",
     ["GET /x 200: violated (unexpected_content_type)",
      "  content type not among the declared (application/json, application/xml)"]),
    ("value-the-validator-cannot-represent", compact({"type": "string"}), "application/json", b"1" + b"0" * 5000,
     ["GET /x 200: violated (invalid_json)", "  unsupported JSON value (ValueError)"]),
]


@pytest.mark.parametrize("case", DETAILS, ids=[c[0] for c in DETAILS])
def test_the_cli_explains_a_refusal(tmp_path, case):
    _, doc, ctype, body, lines = case
    file = tmp_path / "body"
    file.write_bytes(body)
    answer = check_file(contract(tmp_path, doc, name="api.json"), "GET", "/x", 200, file, content_type=ctype)
    assert answer == (1, lines)


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", None], ids=["json", "text", "none"])
def test_a_response_declared_with_empty_content_accepts_any_body(tmp_path, ctype):
    op = contract(tmp_path, _openapi_with_content({}), name="api.json").match("GET", "/x")
    assert op.response_for(200).content == {}
    result = op.check(200, ctype, b"not json at all")
    assert (result.outcome, result.reason) == ("valid", None)


DUPLICATE = {"type": "object", "required": ["id", "name", "id"],
             "properties": {"id": {"type": "string"}, "name": {"type": "object", "properties": {"k": {}}}}}


@pytest.mark.parametrize("drift", [True, False], ids=["drift-on", "drift-off"])
def test_an_empty_verdict_names_its_schema_and_keeps_the_drift(caplog, drift):
    """jsonschema-rs's own bug (duplicate `required` through a registry): "invalid" with no error."""
    doc = {"$defs": {"D": DUPLICATE}}
    registry = jsonschema_rs.Registry([("urn:doc", doc)])
    validator = jsonschema_rs.validator_for({"$ref": "urn:doc#/$defs/D"}, registry=registry)
    media = MediaSpec("application/json", CompiledSchema(validator, "urn:doc", "/$defs/D", frozenset()),
                      DriftFinder({"urn:doc": doc}, ("urn:doc", DUPLICATE)))
    op = Operation("GET", "/x", None, {200: ResponseSpec("200", {"application/json": media})}, {}, None)
    with caplog.at_level(logging.ERROR, logger="egress.contracts"):
        result = op.check(200, "application/json", b'{"id": "a", "name": {"extra": 1}}', drift=drift)
    assert (result.outcome, result.reason, result.violations) == ("unchecked", None, ())
    assert result.drift == (("/name/extra",) if drift else ())
    assert [(r.event, r.schema) for r in caplog.records] == [("contract_empty_verdict", "urn:doc#/$defs/D")]
