"""Operation, status and media-type matching: named cases."""

from __future__ import annotations

import pytest

from .helpers import contract

OPS = {"operations": {
    "GET /charges": {"responses": {"200": {"schema": True}}},
    "GET /charges/{id}": {"responses": {"200": {"schema": True}}},
    "GET /charges/search": {"responses": {"200": {"schema": True}}},
    "GET /charges/{id}/refunds/{rid}": {"responses": {"200": {"schema": True}}},
    "GET /files/{name}.json": {"responses": {"200": {"schema": True}}},
    "GET /files/{name}": {"responses": {"200": {"schema": True}}},
    "POST /charges": {"responses": {"201": {"schema": True}}},
}}


@pytest.mark.parametrize(("method", "path", "template"), [
    ("GET", "/charges", "GET /charges"),
    ("GET", "/charges/ch_1", "GET /charges/{id}"),
    ("GET", "/charges/search", "GET /charges/search"),  # literal beats parameter
    ("get", "/charges/ch_1", "GET /charges/{id}"),
    ("GET", "/charges/ch_1/refunds/re_2", "GET /charges/{id}/refunds/{rid}"),
    ("GET", "/charges/search/refunds/re_2", "GET /charges/{id}/refunds/{rid}"),  # backtracks to param
    ("GET", "/files/report.json", "GET /files/{name}.json"),  # mixed beats bare parameter
    ("GET", "/files/report.csv", "GET /files/{name}"),
    ("GET", "/charges/ch%2F1", "GET /charges/{id}"),  # %2F stays inside one segment
    ("GET", "/charges/", None),  # {id} needs a non-empty segment
    ("GET", "/charges/a/b", None),
    ("DELETE", "/charges/ch_1", None),
    ("POST", "/charges", "POST /charges"),
    ("GET", "/Charges", None),
], ids=["literal", "param", "literal-beats-param", "method-case", "two-params", "backtrack",
        "mixed-segment", "mixed-falls-back", "encoded-slash", "empty-segment", "too-deep",
        "unknown-method", "post", "case-sensitive-path"])
def test_match(tmp_path, method, path, template) -> None:
    op = contract(tmp_path, OPS).match(method, path)
    assert (op.template if op else None) == template


STATUS_OPS = {"operations": {"GET /x": {"responses": {
    "200": {"schema": {"const": "exact"}},
    "2xx": {"schema": {"const": "range"}},
    "4XX": {"schema": {"const": "range4"}},
    "default": {"schema": {"const": "default"}},
}}}}


@pytest.mark.parametrize(("status", "expected"), [
    (200, "exact"), (201, "range"), (299, "range"), (404, "range4"), (500, "default"), (302, "default"),
], ids=["exact", "range", "range-edge", "range-4xx", "default-5xx", "default-3xx"])
def test_status_precedence(tmp_path, status, expected) -> None:
    op = contract(tmp_path, STATUS_OPS).match("GET", "/x")
    assert op.check(status, "application/json", f'"{expected}"'.encode()).outcome == "valid"
    assert op.check(status, "application/json", b'"other"').reason == "contract_violation"


def test_status_without_response_is_unmatched(tmp_path) -> None:
    doc = {"operations": {"GET /x": {"responses": {"200": {"schema": True}}}}}
    result = contract(tmp_path, doc).match("GET", "/x").check(404, "application/json", b"{}")
    assert (result.outcome, result.reason) == ("unmatched", None)


@pytest.mark.parametrize(("declared", "actual", "outcome", "reason"), [
    ("application/json", "application/json", "valid", None),
    ("application/json", "Application/JSON; charset=utf-8", "valid", None),
    ("application/problem+json", "application/problem+json", "valid", None),
    (["application/json", "application/problem+json"], "application/problem+json", "valid", None),
    ("application/json", "text/html", "violated", "unexpected_content_type"),
    ("application/json", None, "violated", "unexpected_content_type"),
    ("application/json", "application/problem+json", "violated", "unexpected_content_type"),
    ("application/*", "application/vnd.api+json", "valid", None),
    ("*/*", "text/plain", "valid", None),
    ("*/*", None, "valid", None),
    ("text/plain", "text/plain; charset=utf-8", "valid", None),
], ids=["exact", "case-and-params", "plus-json", "list", "wrong-type", "missing", "json-vs-problem",
        "type-wildcard", "any-wildcard", "any-wildcard-no-header", "non-json-not-parsed"])
def test_media_types(tmp_path, declared, actual, outcome, reason) -> None:
    doc = {"operations": {"GET /x": {"responses": {"200": {"content_type": declared, "schema": {"type": "object"}}}}}}
    body = b"{}" if actual is None or "json" in actual.lower() or "*" in str(declared) else b"not json"
    result = contract(tmp_path, doc).match("GET", "/x").check(200, actual, body)
    assert (result.outcome, result.reason) == (outcome, reason)


def test_json_type_matched_by_wildcard_is_validated(tmp_path) -> None:
    doc = {"operations": {"GET /x": {"responses": {"200": {"content_type": "application/*", "schema": {"type": "object"}}}}}}
    op = contract(tmp_path, doc).match("GET", "/x")
    assert op.check(200, "application/vnd.api+json", b"[]").reason == "contract_violation"
