"""Loading: compact structure problems, refs (local, remote, escaping), OpenAPI 3.0 conversion, servers."""

from __future__ import annotations

import json

import pytest

from egress.contracts import load_contract
from egress.errors import ConfigError

from .helpers import compact, contract


@pytest.mark.parametrize(("doc", "expected"), [
    ({"ops": {}}, ["c.yaml#/ops: unknown key", "c.yaml#/operations: must be a non-empty mapping"]),
    ({"operations": {"FETCH /x": {"responses": {"200": {}}}}},
     ["c.yaml#/operations/FETCH ~1x: method must be one of"]),
    ({"operations": {"GET x": {"responses": {"200": {}}}}}, ["c.yaml#/operations/GET x: path must start with '/'"]),
    ({"operations": {"GET /x": {"mode": "loud", "responses": {"200": {}}}}},
     ["c.yaml#/operations/GET ~1x/mode: must be one of enforce, report, off"]),
    ({"operations": {"GET /x": {"responses": {"2000": {}}}}},
     ["c.yaml#/operations/GET ~1x/responses/2000: status must be"]),
    ({"operations": {"GET /x": {"responses": {"200": {"schema": "string"}}}}},
     ["c.yaml#/operations/GET ~1x/responses/200/schema: a schema must be"]),
    ({"operations": {"GET /x": {"responses": {"200": {"content_type": 7}}}}},
     ["c.yaml#/operations/GET ~1x/responses/200/content_type: must be a media type"]),
    ({"operations": {"GET /x": {"responses": {"200": {"schemas": {}}}}}},
     ["c.yaml#/operations/GET ~1x/responses/200/schemas: unknown key"]),
    ({"operations": {"GET /x/{a}": {"responses": {"200": {}}}, "GET /x/{b}": {"responses": {"200": {}}}}},
     ["duplicate template"]),
], ids=["no-operations", "bad-method", "relative-path", "bad-mode", "bad-status", "schema-not-mapping",
        "bad-content-type", "unknown-response-key", "duplicate-shape"])
def test_compact_structure_problems(tmp_path, doc, expected) -> None:
    with pytest.raises(ConfigError) as err:
        contract(tmp_path, doc)
    for fragment in expected:
        assert any(fragment in p for p in err.value.problems), (fragment, err.value.problems)


def test_every_problem_is_reported_at_once(tmp_path) -> None:
    doc = {"operations": {"GET /a": {"responses": {"200": {"schema": {"$ref": "https://x/y.json"}}}},
                          "GET /b": {"responses": {"200": {"schema": {"$ref": "../../etc/passwd"}}}},
                          "GET /c": {"responses": {"200": {"schema": {"$ref": "schemas/missing.json"}}}}}}
    with pytest.raises(ConfigError) as err:
        contract(tmp_path, doc)
    assert len(err.value.problems) == 3


@pytest.mark.parametrize(("ref", "fragment"), [
    ("https://x/y.json", "contracts/c.yaml#/operations/GET ~1x/responses/200/schema/$ref: $ref 'https://x/y.json' "
                         "is remote; contracts never fetch anything"),
    ("http://example.com/s#/a", "is remote; contracts never fetch anything"),
    ("../../etc/passwd", "escapes the contracts directory"),
    ("/etc/passwd", "escapes the contracts directory"),
    ("file:///etc/passwd", "escapes the contracts directory"),
    ("schemas/missing.json", "file not found"),
    ("schemas/s.json#/$defs/nope", "pointer '/$defs/nope' does not exist"),
    ("#/$defs/nope", "pointer '/$defs/nope' does not exist"),
    ("urn:example:thing", "cannot be resolved"),
], ids=["remote-https", "remote-http", "escaping-relative", "escaping-absolute-path", "escaping-file-uri",
        "missing-file", "dangling-pointer-in-file", "dangling-pointer-inline", "unknown-urn"])
def test_refused_refs(tmp_path, ref, fragment) -> None:
    with pytest.raises(ConfigError) as err:
        contract(tmp_path, compact({"$ref": ref}), {"schemas/s.json": {"$defs": {}}})
    assert any(fragment in p for p in err.value.problems), err.value.problems


def test_remote_ref_nested_in_a_schema_file_names_that_file(tmp_path) -> None:
    files = {"schemas/a.json": {"properties": {"b": {"$ref": "https://evil.example/b.json"}}}}
    with pytest.raises(ConfigError) as err:
        contract(tmp_path, compact({"$ref": "schemas/a.json"}), files)
    assert err.value.problems == ["contracts/schemas/a.json#/properties/b/$ref: $ref "
                                  "'https://evil.example/b.json' is remote; contracts never fetch anything"]


@pytest.mark.parametrize(("ref", "body", "outcome"), [
    ("schemas/charge.json", {"id": 1}, "violated"),
    ("schemas/charge.json", {"id": "ch_1"}, "valid"),
    ("schemas/defs.json#/$defs/id", "ch_1", "valid"),
    ("schemas/defs.json#/$defs/id", 5, "violated"),
    ("./schemas/../schemas/charge.json", {"id": "ch_1"}, "valid"),
], ids=["file", "file-valid", "file-pointer", "file-pointer-invalid", "dot-segments-inside"])
def test_local_file_refs(tmp_path, ref, body, outcome) -> None:
    files = {"schemas/charge.json": {"type": "object", "properties": {"id": {"$ref": "defs.json#/$defs/id"}}},
             "schemas/defs.json": {"$defs": {"id": {"type": "string", "pattern": "^ch_"}}}}
    op = contract(tmp_path, compact({"$ref": ref}), files).match("GET", "/x")
    assert op.check(200, "application/json", json.dumps(body).encode()).outcome == outcome


def test_inline_schema_local_defs_and_draft7(tmp_path) -> None:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"n": {"type": "integer"}},
              "items": [{"$ref": "#/definitions/n"}], "additionalItems": False}
    op = contract(tmp_path, compact(schema)).match("GET", "/x")
    assert op.check(200, "application/json", b"[1]").outcome == "valid"
    assert op.check(200, "application/json", b"[1, 2]").outcome == "violated"
    assert op.check(200, "application/json", b'["a"]').outcome == "violated"


def test_mode_override(tmp_path) -> None:
    doc = {"operations": {"GET /x": {"mode": "report", "responses": {"200": {}}}, "GET /y": {"responses": {"200": {}}}}}
    c = contract(tmp_path, doc)
    assert c.match("GET", "/x").mode == "report" and c.match("GET", "/y").mode is None
    assert c.compile_seconds > 0 and len(list(c.operations)) == 2


def test_invalid_yaml_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        contract(tmp_path, "operations: [unclosed\n")
    assert err.value.problems[0].startswith("contracts/c.yaml: invalid YAML")


def _oas30(schema, components=None, version="3.0.3"):
    return {"openapi": version, "info": {"title": "t", "version": "1"},
            "paths": {"/x": {"get": {"responses": {"200": {"description": "ok", "content": {
                "application/json": {"schema": schema}}}}}}},
            "components": {"schemas": components or {}}}


@pytest.mark.parametrize(("schema", "components", "body", "outcome"), [
    ({"type": "string", "nullable": True}, None, None, "valid"),
    ({"type": "string"}, None, None, "violated"),
    ({"type": "string", "nullable": True, "enum": ["a", "b"]}, None, None, "valid"),
    ({"type": "string", "nullable": True, "enum": ["a", "b"]}, None, "c", "violated"),
    ({"type": "string", "enum": ["a", "b"]}, None, None, "violated"),
    ({"nullable": True, "allOf": [{"type": "string"}]}, None, None, "valid"),
    ({"type": "integer", "minimum": 5, "exclusiveMinimum": True}, None, 5, "violated"),
    ({"type": "integer", "minimum": 5, "exclusiveMinimum": True}, None, 6, "valid"),
    ({"type": "integer", "minimum": 5, "exclusiveMinimum": False}, None, 5, "valid"),
    ({"type": "integer", "maximum": 5, "exclusiveMaximum": True}, None, 5, "violated"),
    ({"$ref": "#/components/schemas/S", "nullable": True}, {"S": {"type": "string"}}, None, "valid"),
    ({"$ref": "#/components/schemas/S", "type": "integer"}, {"S": {"type": "string"}}, "s", "valid"),
    ({"type": "string", "format": "date-time-rfc-2822", "example": "x", "x-twilio": {"a": 1}}, None, "anything", "valid"),
    ({"type": "object", "discriminator": {"propertyName": "k"}, "properties": {"k": {"type": "string"}}}, None, {"k": "a"}, "valid"),
    ({"type": "string", "format": "date-time"}, None, "nope", "violated"),
], ids=["nullable", "not-nullable", "nullable-enum-null", "nullable-enum-other", "enum-not-nullable",
        "nullable-beside-allOf-lenient", "exclusiveMinimum-true", "exclusiveMinimum-true-above",
        "exclusiveMinimum-false", "exclusiveMaximum-true", "nullable-beside-ref-lenient",
        "ref-siblings-ignored-type", "unknown-format-and-extensions", "discriminator-tolerated",
        "known-format-asserted"])
def test_openapi_30_conversion(tmp_path, schema, components, body, outcome) -> None:
    c = contract(tmp_path, _oas30(schema, components), name="api.json")
    assert c.match("GET", "/x").check(200, "application/json", json.dumps(body).encode()).outcome == outcome


def test_openapi_31_is_2020_12_with_component_refs(tmp_path) -> None:
    doc = _oas30({"$ref": "#/components/schemas/S"}, {"S": {"type": ["string", "null"], "nullable": False}}, "3.1.0")
    op = contract(tmp_path, doc, name="api.yaml").match("GET", "/x")
    assert op.check(200, "application/json", b"null").outcome == "valid"
    assert op.check(200, "application/json", b"1").outcome == "violated"


def test_openapi_response_refs_no_content_and_mode(tmp_path) -> None:
    doc = {"openapi": "3.0.1", "info": {"title": "t", "version": "1"},
           "paths": {"/x/{id}": {"delete": {"x-egress-mode": "off", "responses": {
               "204": {"description": "gone"}, "404": {"$ref": "#/components/responses/NotFound"}}}}},
           "components": {"responses": {"NotFound": {"description": "nf", "content": {
               "application/json": {"schema": {"type": "object", "required": ["error"]}}}}}}}
    op = contract(tmp_path, doc, name="api.json").match("DELETE", "/x/1")
    assert op.mode == "off"
    assert op.check(204, None, b"whatever").outcome == "valid"
    assert op.check(404, "application/json", b"{}").reason == "contract_violation"


@pytest.mark.parametrize(("server", "path", "base_path", "req_path", "template"), [
    ("https://api.openai.com/v1", "/models", "/v1", "/models", "GET /models"),
    ("https://api.openai.com/v1", "/models", "/gateway/v1", "/models", "GET /models"),
    ("https://api.twilio.com", "/2010-04-01/Accounts.json", "/2010-04-01", "/Accounts.json", "GET /Accounts.json"),
    ("https://api.example.com", "/models", "", "/models", "GET /models"),
    ("https://api.example.com/v2", "/models", "", "/v2/models", "GET /v2/models"),
], ids=["server-path-equals-base", "gateway-prefix", "base-inside-paths", "no-paths", "server-path-no-base"])
def test_servers_line_up_with_base_path(tmp_path, server, path, base_path, req_path, template) -> None:
    doc = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "servers": [{"url": server}],
           "paths": {path: {"get": {"responses": {"200": {"description": "ok"}}}}}}
    op = contract(tmp_path, doc, name="api.json", base_path=base_path).match("GET", req_path)
    assert op is not None and op.template == template


def test_nothing_lines_up_is_an_error(tmp_path) -> None:
    doc = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "servers": [{"url": "https://h/v1"}],
           "paths": {"/models": {"get": {"responses": {"200": {"description": "ok"}}}}}}
    with pytest.raises(ConfigError, match="no operation lines up"):
        contract(tmp_path, doc, name="api.json", base_path="/v2")


def test_demo_contract_loads() -> None:
    from pathlib import Path
    root = Path(__file__).resolve().parents[3] / "contracts"
    c = load_contract(root / "payments.yaml", contracts_dir=root)
    assert sorted(op.template for op in c.operations) == ["GET /charges", "GET /charges/{id}", "POST /charges"]


def test_identical_inline_schemas_compile_once(tmp_path) -> None:
    """1,000 operations that all `$ref` the same file: one document, one validator (load time
    and memory stay flat; before, each operation compiled its own copy: 33 s and +130 MB)."""
    from egress.contracts import load_contract
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "thing.json").write_text('{"type": "object", "required": ["id"]}')
    lines = ["operations:"]
    for i in range(1000):
        lines += [f"  GET /r{i}/things/{{id}}:", "    responses:",
                  '      "200": {schema: {$ref: "schemas/thing.json"}}', "      default: {schema: {type: object}}"]
    (tmp_path / "many.yaml").write_text("\n".join(lines) + "\n")
    contract = load_contract(tmp_path / "many.yaml", contracts_dir=tmp_path)
    validators = {id(spec.schema) for op in contract.operations for resp in op.responses
                  for spec in (resp.content or {}).values() if spec.schema is not None}
    assert len(validators) == 2
    op = contract.match("GET", "/r999/things/t1")
    assert op.check(200, "application/json", b'{"x": 1}').violations[0].keyword == "required"
