"""Checking responses: violation pointers, no instance values in results, hostile bodies, drift."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from .helpers import compact, contract

CHARGE = {"type": "object", "required": ["id", "amount"], "additionalProperties": False,
          "properties": {"id": {"type": "string", "pattern": "^ch_"}, "amount": {"type": "integer", "minimum": 0},
                         "items": {"type": "array", "items": {"type": "object", "required": ["sku"],
                                                              "properties": {"sku": {"type": "string"}}}},
                         "meta": {"type": "object", "additionalProperties": {"type": "integer"}},
                         "created": {"type": "string", "format": "date-time"},
                         "status": {"enum": ["ok", "failed"]}}}


def _op(tmp_path, schema=CHARGE):
    return contract(tmp_path, compact(schema)).match("GET", "/x")


@pytest.mark.parametrize(("body", "instance_path", "keyword", "message"), [
    ({"amount": 1}, "", "required", "missing required property 'id'"),
    ({"id": "ch_1", "amount": "1"}, "/amount", "type", "expected type integer"),
    ({"id": "ch_1", "amount": -1}, "/amount", "minimum", "expected a number >= 0"),
    ({"id": "x", "amount": 1}, "/id", "pattern", "does not match pattern '^ch_'"),
    ({"id": "ch_1", "amount": 1, "items": [{"sku": "a"}, {}]}, "/items/1", "required", "missing required property 'sku'"),
    ({"id": "ch_1", "amount": 1, "created": "yesterday"}, "/created", "format", "not a valid 'date-time'"),
    ({"id": "ch_1", "amount": 1, "status": "weird"}, "/status", "enum", "expected one of: 'ok', 'failed'"),
    ({"id": "ch_1", "amount": 1, "meta": {"undeclared_key": "x"}}, "/meta/*", "type", "expected type integer"),
    ({"id": "ch_1", "amount": 1, "surprise": 1}, "", "additionalProperties", "additional properties are not allowed"),
], ids=["required", "type", "minimum", "pattern", "nested-array", "format", "enum", "undeclared-name-masked",
        "additional-properties"])
def test_violation_pointers_and_messages(tmp_path, body, instance_path, keyword, message) -> None:
    result = _op(tmp_path).check(200, "application/json", json.dumps(body).encode())
    assert (result.outcome, result.reason) == ("violated", "contract_violation")
    assert dataclasses.astuple(result.violations[0])[:2] == (instance_path, keyword)
    assert result.violations[0].message == message


def test_schema_path_points_at_the_keyword(tmp_path) -> None:
    result = _op(tmp_path).check(200, "application/json", b'{"id": "ch_1", "amount": -1}')
    assert result.violations[0].schema_path == "/properties/amount/minimum"


MARK = "SECRETVALUE"
HOSTILE = {"id": MARK, "amount": MARK, "status": MARK, "created": MARK, "items": [MARK, {"sku": 1, MARK: MARK}],
           "meta": {MARK: MARK, f"{MARK}2": [MARK]}, MARK: {MARK: MARK}, "x" + MARK: 1}


@pytest.mark.parametrize("schema", [
    CHARGE,
    {"type": "object", "properties": {"id": {"const": "fixed"}}, "propertyNames": {"maxLength": 3}},
    {"oneOf": [{"type": "integer"}, {"type": "array"}]},
    {"type": "object", "unevaluatedProperties": False, "properties": {"id": {"type": "string"}},
     "dependentRequired": {"id": ["amount"]}, "minProperties": 100},
    {"type": "object", "patternProperties": {"^S": {"type": "integer"}}, "not": {"type": "object"}},
], ids=["charge", "const-propertyNames", "oneOf", "unevaluated-dependentRequired", "patternProperties-not"])
def test_no_instance_value_in_any_violation_field(tmp_path, schema) -> None:
    result = _op(tmp_path, schema).check(200, "application/json", json.dumps(HOSTILE).encode(), max_violations=50)
    assert result.outcome == "violated" and result.violations
    for violation in result.violations:
        for value in dataclasses.astuple(violation):
            assert MARK not in value, violation
    assert MARK not in repr(result)


def test_max_violations_bounds_the_list(tmp_path) -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    result = _op(tmp_path, schema).check(200, "application/json", json.dumps(["a"] * 100).encode(), max_violations=3)
    assert len(result.violations) == 3


@pytest.mark.parametrize(("body", "detail"), [
    (b"[" * 100_000, "nested deeper than 64"),
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested deeper than 64"),
    (b"[" * 65 + b"]" * 65, "nested deeper than 64"),
    (b'{"a": "\xff\xfe"}', "not valid UTF-8"),
    (b'{"a": "\xed\xa0\x80"}', "not valid UTF-8"),
    (b'{"a": 1,}', "not valid JSON"),
    (b"", "not valid JSON"),
    (b'{"a": NaN}', "not valid JSON"),
], ids=["unclosed-bomb", "closed-bomb", "object-bomb", "just-too-deep", "invalid-utf8", "encoded-surrogate",
        "trailing-comma", "empty", "nan"])
def test_invalid_json(tmp_path, body, detail) -> None:
    op = _op(tmp_path, True)
    started = time.perf_counter()
    result = op.check(200, "application/json", body)
    assert time.perf_counter() - started < 0.5
    assert (result.outcome, result.reason) == ("violated", "invalid_json")
    assert detail in result.detail


def test_depth_limit_counts_brackets_in_strings_correctly(tmp_path) -> None:
    op = _op(tmp_path, True)
    tricky = json.dumps({"s": "[[[[" * 100 + '\\"{{{{' * 100, "t": ["\\"]}).encode()
    assert op.check(200, "application/json", tricky).outcome == "valid"
    assert op.check(200, "application/json", b"[" * 64 + b"]" * 64).outcome == "valid"


@pytest.mark.parametrize(("schema", "body", "outcome"), [
    ({"type": "integer"}, b"1" + b"0" * 100_000, "valid"),
    ({"type": "integer", "maximum": 10**30}, b"1" + b"0" * 100_000, "violated"),
    ({"type": "integer", "maximum": 18446744073709551616}, b"18446744073709551617", "violated"),
    ({"type": "integer", "maximum": 18446744073709551616}, b"18446744073709551616", "valid"),
    ({"const": 12345678901234567890123}, b"12345678901234567890124", "violated"),
    ({"type": "number"}, b"1e400", "valid"),
    ({"type": "object"}, b'{"id": "123456789012345678901234567890"}', "valid"),
], ids=["huge-int", "huge-int-over-max", "u64-plus-one", "u64-boundary", "big-const-exact", "beyond-double",
        "long-digits-in-string"])
def test_big_numbers_exact(tmp_path, schema, body, outcome) -> None:
    op = _op(tmp_path, schema)
    started = time.perf_counter()
    assert op.check(200, "application/json", body).outcome == outcome
    assert time.perf_counter() - started < 0.5


DRIFT_SCHEMA = {"type": "object", "properties": {
    "data": {"type": "array", "items": {"$ref": "#/$defs/item"}},
    "meta": {"type": "object", "additionalProperties": {"type": "object", "properties": {"n": {"type": "integer"}}}},
    "free": {"type": "object"}},
    "$defs": {"item": {"allOf": [{"properties": {"id": {}}}, {"properties": {"amount": {}}}],
                       "patternProperties": {"^x-": {}}}}}


@pytest.mark.parametrize(("body", "drift"), [
    ({"data": [{"id": 1, "amount": 2}]}, ()),
    ({"data": [{"id": 1, "new_field": 2}, {"new_field": 3, "other": 1}]}, ("/data/*/new_field", "/data/*/other")),
    ({"data": [{"x-vendor": 1}]}, ()),
    ({"meta": {"k1": {"n": 1, "extra": 1}}}, ("/meta/*/extra",)),
    ({"free": {"anything": 1}}, ()),
    ({"top": 1}, ("/top",)),
    ({"data": [{"a" * 100: 1}]}, ("/data/*/" + "a" * 64,)),
    ({"da/ta": 1}, ("/da~1ta",)),
], ids=["none", "array-items-deduplicated", "pattern-declared", "map-values", "free-form", "top-level",
        "name-truncated", "pointer-escaped"])
def test_drift(tmp_path, body, drift) -> None:
    op = _op(tmp_path, DRIFT_SCHEMA)
    result = op.check(200, "application/json", json.dumps(body).encode(), drift=True)
    assert result.outcome == "valid" and result.drift == drift
    assert op.check(200, "application/json", json.dumps(body).encode()).drift == ()


def test_drift_is_bounded(tmp_path) -> None:
    op = _op(tmp_path, {"type": "object", "properties": {"a": {}}})
    body = json.dumps({f"f{i}": i for i in range(1000)}).encode()
    assert len(op.check(200, "application/json", body, drift=True, max_drift=20).drift) == 20
