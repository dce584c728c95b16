"""How vendor documents are read: `contract_options` (nullable, formats), duplicate `required`,
empty verdicts, violations under anyOf/oneOf, one shared validator, and lint's quirk warnings."""

from __future__ import annotations

import dataclasses
import json
import logging
from types import SimpleNamespace

import jsonschema_rs
import pytest

from egress.contracts.compiler import CompiledSchema
from egress.contracts.explain import EMPTY_VERDICTS
from egress.contracts.lint import lint_dir
from egress.contracts.operation import MediaSpec, Operation, ResponseSpec

from .helpers import contract, write

LENIENT = SimpleNamespace(nullable="lenient", formats="assert")
STRICT = SimpleNamespace(nullable="strict", formats="assert")
IGNORE = SimpleNamespace(nullable="lenient", formats="ignore")
EXPANDABLE = {"nullable": True, "anyOf": [{"type": "string"}, {"$ref": "#/components/schemas/C"}]}
COMPONENTS = {"C": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}}


def _doc(schema, version="3.0.3", components=None, paths_extra=None):
    paths = {"/x": {"get": {"responses": {"200": {"description": "ok", "content": {
        "application/json": {"schema": schema}}}}}}, **(paths_extra or {})}
    return {"openapi": version, "info": {"title": "t", "version": "1"}, "paths": paths,
            "components": {"schemas": {**COMPONENTS, **(components or {})}}}


def _check(tmp_path, schema, body, options, version="3.0.3"):
    c = contract(tmp_path, _doc(schema, version), name="api.json", options=options)
    return c.match("GET", "/x").check(200, "application/json", json.dumps(body).encode())


@pytest.mark.parametrize(("schema", "version", "body", "lenient", "strict"), [
    (EXPANDABLE, "3.0.3", None, "valid", "violated"),
    (EXPANDABLE, "3.0.3", "cus_1", "valid", "valid"),
    (EXPANDABLE, "3.0.3", {"id": "cus_1"}, "valid", "valid"),
    (EXPANDABLE, "3.0.3", 5, "violated", "violated"),
    ({"nullable": True, "oneOf": [{"type": "string"}, {"type": "integer"}]}, "3.0.3", None, "valid", "violated"),
    ({"nullable": True, "allOf": [{"$ref": "#/components/schemas/C"}]}, "3.0.3", None, "valid", "violated"),
    ({"nullable": True, "allOf": [{"$ref": "#/components/schemas/C"}]}, "3.0.3", {}, "violated", "violated"),
    ({"nullable": True, "$ref": "#/components/schemas/C"}, "3.0.3", None, "valid", "violated"),
    ({"type": "string", "nullable": True, "enum": ["a"]}, "3.0.3", None, "valid", "violated"),
    ({"type": "string", "nullable": True, "enum": ["a"]}, "3.0.3", "b", "violated", "violated"),
    ({"type": "string", "nullable": True}, "3.0.3", None, "valid", "valid"),
    ({"type": "string"}, "3.0.3", None, "violated", "violated"),
    ({"type": "string", "nullable": True}, "3.1.0", None, "valid", "violated"),
    ({"anyOf": [{"type": "string"}], "nullable": True}, "3.1.0", None, "valid", "violated"),
    ({"type": ["string", "null"]}, "3.1.0", None, "valid", "valid"),
], ids=["expandable-null", "expandable-id", "expandable-object", "expandable-wrong-type", "oneOf-null",
        "allOf-null", "allOf-still-checked", "ref-sibling-null", "enum-null", "enum-other", "typed-null",
        "not-nullable", "31-leftover-typed", "31-leftover-anyOf", "31-type-list"])
def test_nullable_readings(tmp_path, schema, version, body, lenient, strict) -> None:
    for options, expected in ((LENIENT, lenient), (STRICT, strict)):
        result = _check(tmp_path / options.nullable, json.loads(json.dumps(schema)), body, options, version)
        assert result.outcome == expected, options.nullable
        assert result.reason == (None if expected == "valid" else "contract_violation")


@pytest.mark.parametrize(("options", "outcome", "reason"), [
    (LENIENT, "violated", "contract_violation"), (IGNORE, "valid", None)],
    ids=["formats-assert", "formats-ignore"])
def test_formats_option(tmp_path, options, outcome, reason) -> None:
    result = _check(tmp_path, {"type": "string", "format": "uri"}, "/2010-04-01/Accounts/AC1.json", options)
    assert (result.outcome, result.reason) == (outcome, reason)
    if outcome == "violated":
        assert [(v.keyword, v.message) for v in result.violations] == [("format", "not a valid 'uri'")]


DUPLICATE = {"type": "object", "required": ["id", "name", "id"],
             "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}


@pytest.mark.parametrize(("body", "outcome", "violations"), [
    ({"id": "a", "name": "b"}, "valid", []),
    ({"id": "a"}, "violated", [("", "required", "missing required property 'name'")]),
], ids=["valid-passes", "missing-is-named"])
def test_duplicate_required_behind_ref_is_normalized(tmp_path, body, outcome, violations) -> None:
    doc = _doc({"$ref": "#/components/schemas/D"}, "3.1.0", {"D": DUPLICATE})
    c = contract(tmp_path, doc, name="api.json")
    result = c.match("GET", "/x").check(200, "application/json", json.dumps(body).encode())
    assert result.outcome == outcome
    assert [(v.instance_path, v.keyword, v.message) for v in result.violations] == violations
    assert "contracts/api.json#/components/schemas/D/required: duplicate names in required" in c.quirks[0]


def test_invalid_with_no_errors_is_unchecked_logged_and_counted(caplog) -> None:
    """jsonschema-rs's own bug, reproduced for real (duplicate `required` reached through a registry)."""
    registry = jsonschema_rs.Registry([("urn:doc", {"$defs": {"D": DUPLICATE}})])
    validator = jsonschema_rs.validator_for({"$ref": "urn:doc#/$defs/D"}, registry=registry)
    assert not validator.is_valid({"id": "a", "name": "SECRETVALUE"})
    assert list(validator.iter_errors({"id": "a", "name": "SECRETVALUE"})) == []
    spec = ResponseSpec("200", {"application/json": MediaSpec("application/json", CompiledSchema(
        validator, "urn:doc", "/$defs/D", frozenset()))})
    op = Operation("GET", "/x", None, {200: spec}, {}, None)
    before = EMPTY_VERDICTS["count"]
    with caplog.at_level(logging.ERROR, logger="egress.contracts"):
        result = op.check(200, "application/json", b'{"id": "a", "name": "SECRETVALUE"}')
    assert (result.outcome, result.reason, result.violations) == ("unchecked", None, ())
    assert "egress bug" in result.detail
    assert EMPTY_VERDICTS["count"] == before + 1
    assert [r.event for r in caplog.records] == ["contract_empty_verdict"]
    assert "SECRETVALUE" not in caplog.text and all("SECRETVALUE" not in str(r.__dict__) for r in caplog.records)


CUSTOMER = {"type": "object", "required": ["id", "object"], "properties": {
    "id": {"type": "string"}, "object": {"enum": ["customer"]},
    "address": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}}


@pytest.mark.parametrize(("schema", "body", "expected"), [
    ({"anyOf": [{"type": "string"}, {"$ref": "#/components/schemas/Cu"}], "nullable": True},
     {"id": "c", "object": "customer", "address": {}},
     [("/address", "required", "/components/schemas/Cu/properties/address/required",
       "missing required property 'city' (anyOf branch 1, the closest of 3; no branch matched)")]),
    ({"oneOf": [{"type": "string"}, {"$ref": "#/components/schemas/Cu"}]}, {"object": "customer"},
     [("", "required", "/components/schemas/Cu/required",
       "missing required property 'id' (oneOf branch 1, the closest of 2; no branch matched)")]),
    ({"oneOf": [{"type": "object"}, {"$ref": "#/components/schemas/Cu"}]}, {"id": "c", "object": "customer"},
     [("", "oneOf", "/paths/~1x/get/responses/200/content/application~1json/schema/oneOf",
       "matches more than one oneOf branch; exactly one must match")]),
    ({"anyOf": [{"type": "integer"}, {"anyOf": [{"type": "boolean"}, {"$ref": "#/components/schemas/Cu"}]}]},
     {"id": 1, "object": "customer"},
     [("/id", "type", "/components/schemas/Cu/properties/id/type", "expected type string (anyOf branch 1, "
       "the closest of 2; no branch matched; anyOf branch 1, the closest of 2; no branch matched)")]),
], ids=["expandable-or-null", "oneOf-none", "oneOf-several", "nested-anyOf"])
def test_violations_under_anyof_oneof_name_the_closest_branch(tmp_path, schema, body, expected) -> None:
    c = contract(tmp_path, _doc(schema, components={"Cu": CUSTOMER}), name="api.json")
    result = c.match("GET", "/x").check(200, "application/json", json.dumps(body).encode())
    assert (result.outcome, result.reason) == ("violated", "contract_violation")
    assert [dataclasses.astuple(v) for v in result.violations] == expected


def test_one_validator_serves_every_operation_of_a_document(tmp_path) -> None:
    extra = {f"/op{i}": {"get": {"responses": {
        "200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/C"}}}},
        "default": {"description": "e", "content": {"application/json": {"schema": {"type": "object"}}}}}}}
        for i in range(50)}
    c = contract(tmp_path, _doc({"$ref": "#/components/schemas/C"}, paths_extra=extra), name="api.json")
    schemas = [m.schema for op in c for r in op.responses for m in (r.content or {}).values()]
    assert len(schemas) == 101 and len({id(s.validator) for s in schemas}) == 1
    op = c.match("GET", "/op7")
    assert op.check(200, "application/json", b'{"id": "x"}').outcome == "valid"
    bad = op.check(200, "application/json", b'{"id": 1}')
    assert [(v.instance_path, v.schema_path) for v in bad.violations] == [("/id", "/components/schemas/C/properties/id/type")]
    assert op.check(500, "application/json", b"[]").outcome == "violated"


def test_lint_warns_about_vendor_quirks_with_pointers_into_the_file(tmp_path) -> None:
    doc = _doc(EXPANDABLE, components={"U": {"type": "object", "properties": {
        "uri": {"type": "string", "format": "uri"}}}}, paths_extra={
        "/r?beta=true": {"get": {"responses": {"200": {"description": "ok"}}}},
        "/u": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/U"}, "example": {"uri": "/2010-04-01/SECRETVALUE.json"}}}}}}}})
    root = tmp_path / "contracts"
    write(root, {"api.json": doc})
    warnings: list[str] = []
    assert lint_dir(root, warnings) == []
    assert sorted(warnings) == sorted([
        "contracts/api.json#/paths/~1x/get/responses/200/content/application~1json/schema: nullable without type: "
        "strict allows no null here, lenient allows null",
        "contracts/api.json#/paths/~1r?beta=true: a '?query' inside a path key: request paths never carry their "
        "query, so no request matches it",
        "contracts/api.json#/components/schemas/U/properties/uri/format: format uri: 1 of the document's own "
        "examples put a relative URI here; contract_options.formats: ignore accepts them",
    ])
    assert not any("SECRETVALUE" in w for w in warnings)


def test_identical_inline_schemas_share_one_compiled_copy_but_point_at_their_own_place(tmp_path) -> None:
    inline = {"type": "object", "properties": {"n": {"type": "integer"}}}
    extra = {f"/i{i}": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {
        "schema": json.loads(json.dumps(inline))}}}}}} for i in range(3)}
    c = contract(tmp_path, _doc({"type": "string"}, paths_extra=extra), name="api.json")
    for i in range(3):
        bad = c.match("GET", f"/i{i}").check(200, "application/json", b'{"n": "x"}')
        assert [v.schema_path for v in bad.violations] == [
            f"/paths/~1i{i}/get/responses/200/content/application~1json/schema/properties/n/type"]
