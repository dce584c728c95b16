"""The check stage (egress/check.py) called as the pipeline calls it, for what scripts/mutants found unheld.

Each case names the breakage it catches: a redirect out of the upstream's base path through
`%2e%2e` (or a base path matched only once decoded), a Location that is no URL at all crashing
the stage, the blocked event's attributes, decoded bytes not counted against (or not given back
to) the in-flight budget, an undeclared 400 refused like an undeclared 2xx, several Content-Type
fields let through, no Content-Type at all crashing, the upstream's depth and violation limits
ignored, drift computed unasked, unbounded or counted as an anomaly, every event's exact attributes,
and content_type_of crashing on a response with no or one Content-Type.
"""

from __future__ import annotations

import gzip
import json
import typing
from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from egress import check
from egress.config import settings_from_dict
from egress.contracts.results import Reason
from egress.errors import (
    ContractViolation,
    InvalidJson,
    ProxyOverloaded,
    RedirectBlocked,
    ResponseTooLarge,
    UnexpectedContentType,
)
from egress.exchange import Exchange
from egress.routes import Router
from egress.send.client import UpstreamResponse
from egress.send.inflight import InflightBudget
from tests.conftest import base_config
from tests.unit.contracts.helpers import contract

BASE = "https://api.pay.example/v1"
SCHEMA = {"type": "object", "properties": {f"f{i}": {"type": "integer"} for i in range(5)}}


def settings(**upstream):
    doc = base_config([{"name": "pay", "url": BASE, **upstream}])
    return settings_from_dict(doc, base_dir=Path("."), environ={})


def response(status=200, headers=(), body=b"", url=BASE + "/charges"):
    return UpstreamResponse(status, CIMultiDictProxy(CIMultiDict(headers)), body, URL(url))


def events(ex):
    return [(e.name, e.attrs) for e in ex.events]


# --- redirects ---------------------------------------------------------------------------------

REDIRECTS = [
    # id, status, Location (None: absent), the scheme in the blocked event (None: passes)
    ("inside-the-upstream", 302, BASE + "/other", None),
    ("relative-inside", 303, "/v1/other", None),
    ("not-modified-is-no-redirect", 304, "https://evil.example/", None),
    ("no-location", 302, None, None),
    ("another-host", 302, "https://evil.example/v1/x", "https"),
    ("encoded-dot-segments-leave-the-base-path", 302, "/v1/%2e%2e/admin", "https"),
    ("base-path-only-once-decoded", 307, "/v%31/x", "https"),
    ("not-a-url", 302, "http://[::1", "?"),
    ("long-scheme-cut-to-16", 301, "abcdefghijklmnopqrstu://x", "abcdefghijklmnop"),
]


@pytest.mark.parametrize("case", REDIRECTS, ids=[c[0] for c in REDIRECTS])
def test_redirect_policy(case):
    _, status, location, scheme = case
    ex = Exchange("GET")
    resp = response(status, [("Location", location)] if location is not None else [])
    if scheme is None:
        check.check_redirect(resp, Router(settings()), ex)
        assert events(ex) == []
    else:
        with pytest.raises(RedirectBlocked) as info:
            check.check_redirect(resp, Router(settings()), ex)
        assert info.value.reason == "redirect_blocked"
        assert events(ex) == [("egress.redirect_blocked", {"status": status, "scheme": scheme})]


# --- decoding and the in-flight budget ---------------------------------------------------------

DECODED = [
    # id, headers, wire body, decoded, still encoded on the wire
    ("identity", [], b"x" * 300, b"x" * 300, False),
    # no coding named: no decoder is set up, the body is the wire body itself
    ("identity-named", [("Content-Encoding", "Identity")], b"x" * 300, b"x" * 300, False),
    ("empty-fields", [("Content-Encoding", ""), ("Content-Encoding", " , ")], b"x" * 300, b"x" * 300, False),
    ("gzip", [("Content-Encoding", "gzip")], gzip.compress(b"y" * 300), b"y" * 300, True),
    ("identity-then-gzip", [("Content-Encoding", "identity"), ("Content-Encoding", "GZIP")],
     gzip.compress(b"y" * 300), b"y" * 300, True),
]


@pytest.mark.parametrize("with_hold", [True, False], ids=["hold", "no-hold"])
@pytest.mark.parametrize("case", DECODED, ids=[c[0] for c in DECODED])
def test_decoded_bytes_are_held_then_given_back(case, with_hold):
    _, headers, wire, decoded, encoded = case
    budget = InflightBudget(1 << 20)
    ex = Exchange("GET")
    checked = check.decode_body(response(200, headers, wire), settings().upstreams[0], ex,
                                budget.hold() if with_hold else None)
    assert (checked.body, checked.encoded, ex.response_bytes) == (decoded, encoded, len(decoded))
    assert (checked.body is wire) is not encoded
    assert budget.in_use == (len(decoded) if with_hold else 0)
    checked.release()
    assert budget.in_use == 0
    assert events(ex) == []


REFUSED = [
    # id, headers, wire body, budget limit, error, event attributes
    ("over-max-decompressed-bytes", [("Content-Encoding", "gzip")], gzip.compress(bytes(5000)), 1 << 20,
     ResponseTooLarge, {"limit": "max_decompressed_bytes", "value": 1000}),
    ("identity-over-the-budget", [], b"x" * 300, 100, ProxyOverloaded, {"limit": "max_inflight_bytes", "value": 100}),
    ("decoded-over-the-budget", [("Content-Encoding", "gzip")], gzip.compress(b"y" * 300), 100, ProxyOverloaded,
     {"limit": "max_inflight_bytes", "value": 100}),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_refused_body_gives_its_budget_back(case):
    _, headers, wire, limit, error, attrs = case
    budget = InflightBudget(limit)
    budget.hold().grow(0)
    ex = Exchange("GET")
    up = settings(limits={"max_decompressed_bytes": 1000}).upstreams[0]
    with pytest.raises(error) as info:
        check.decode_body(response(200, headers, wire), up, ex, budget.hold())
    assert info.value.reason == error.reason
    assert budget.in_use == 0
    assert events(ex) == [("egress.limit_exceeded", attrs)]


def test_a_refusal_without_a_hold_is_the_refusal():
    up = settings(limits={"max_decompressed_bytes": 1000}).upstreams[0]
    with pytest.raises(ResponseTooLarge):
        check.decode_body(response(200, [("Content-Encoding", "gzip")], gzip.compress(bytes(5000))), up,
                          Exchange("GET"), None)


# --- the contract ------------------------------------------------------------------------------

def _op(tmp_path):
    doc = {"operations": {"GET /x": {"responses": {"200": {"schema": SCHEMA}}}}}
    return contract(tmp_path, doc).match("GET", "/x")


JSON = [("Content-Type", "application/json")]
VIOLATION = {"instance_path": "/f0", "schema_path": "/properties/f0/type", "keyword": "type",
             "message": "expected type integer"}


def _nested(levels):
    body: object = {}
    for _ in range(levels):
        body = {"f9": body}
    return json.dumps(body).encode()


CONTRACT = [
    # id, upstream settings, status, headers, body, check kwargs,
    #   (verdict, error raised or None, events, anomalous)
    ("undeclared-2xx-is-a-violation", {}, 201, JSON, b"{}", {},
     ("violated", ContractViolation, [("egress.contract_violation", {
         "reason": "contract_violation", "instance_path": "", "schema_path": "/responses", "keyword": "status",
         "message": "status 201 is not declared by the operation"})], True)),
    ("undeclared-400-passes-unmatched", {}, 400, JSON, b"{}", {},
     ("unmatched", None, [("egress.contract_unmatched", {"status": 400})], False)),
    ("undeclared-500-passes-unmatched", {}, 500, JSON, b"{}", {},
     ("unmatched", None, [("egress.contract_unmatched", {"status": 500})], False)),
    ("several-content-types", {}, 200, [("Content-Type", "application/json"), ("Content-Type", "text/html")],
     b"{}", {}, ("violated", UnexpectedContentType, [("egress.contract_violation", {
         "reason": "unexpected_content_type", "instance_path": "", "schema_path": "",
         "keyword": "unexpected_content_type"})], True)),
    ("no-content-type-where-json-is-declared", {}, 200, [], b"{}", {},
     ("violated", UnexpectedContentType, [("egress.contract_violation", {
         "reason": "unexpected_content_type", "instance_path": "", "schema_path": "",
         "keyword": "unexpected_content_type"})], True)),
    ("depth-is-the-upstreams-limit", {"limits": {"max_json_depth": 3}}, 200, JSON, _nested(5), {},
     ("violated", InvalidJson, [("egress.contract_violation", {
         "reason": "invalid_json", "instance_path": "", "schema_path": "", "keyword": "invalid_json"})], True)),
    ("violations-bounded-by-the-upstreams-limit", {"limits": {"max_violations": 1}}, 200, JSON,
     json.dumps({f"f{i}": "s" for i in range(5)}).encode(), {},
     ("violated", ContractViolation, [("egress.contract_violation", {"reason": "contract_violation", **VIOLATION})],
      True)),
    ("report-mode-refuses-nothing", {"mode": "report"}, 200, JSON, b'{"f0": "s"}', {},
     ("violated", None, [("egress.contract_violation", {"reason": "contract_violation", **VIOLATION})], True)),
    ("drift-not-looked-for-unasked", {}, 200, JSON, b'{"f0": 1, "extra": 1}', {}, ("valid", None, [], False)),
    ("drift-asked-is-no-anomaly", {}, 200, JSON, b'{"f0": 1, "extra": 1}', {"drift": True},
     ("valid", None, [("egress.contract_drift", {"fields": ["/extra"]})], False)),
    ("drift-bounded-at-20", {}, 200, JSON, json.dumps({"f0": 1, **{f"d{i:02}": i for i in range(30)}}).encode(),
     {"drift": True}, ("valid", None, [("egress.contract_drift", {"fields": [f"/d{i:02}" for i in range(20)]})],
                       False)),
]


@pytest.mark.parametrize("case", CONTRACT, ids=[c[0] for c in CONTRACT])
def test_check_contract(tmp_path, case):
    _, upstream, status, headers, body, kwargs, (verdict, error, expected_events, anomalous) = case
    op, up, ex = _op(tmp_path), settings(**upstream).upstreams[0], Exchange("GET")
    resp = response(status, headers, body)
    if error is None:
        assert check.check_contract(op, resp, body, up, ex, **kwargs) == verdict
    else:
        with pytest.raises(error) as info:
            check.check_contract(op, resp, body, up, ex, **kwargs)
        assert info.value.reason == error.reason
        assert info.value.extra["operation"] == "GET /x"
        assert info.value.extra["violations"] == [
            {k: v for k, v in attrs.items() if k != "reason"} for _, attrs in expected_events
            if "message" in attrs]
    assert ex.contract == verdict
    assert events(ex) == expected_events
    assert ex.anomalous is anomalous


def test_every_refusal_reason_has_its_error():
    """check_contract maps a violated result's reason to the error it raises in enforce mode."""
    assert {reason: check._ENFORCE_ERRORS[reason].reason for reason in typing.get_args(Reason)} == {
        reason: reason for reason in typing.get_args(Reason)}


@pytest.mark.parametrize("mode,error", [("enforce", UnexpectedContentType), ("report", None)],
                         ids=["enforce", "report"])
def test_several_content_types_are_refused_even_where_no_content_is_declared(tmp_path, mode, error):
    """A 204 declared without content accepts any body, but not one whose type is ambiguous."""
    doc = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
           "paths": {"/x": {"get": {"responses": {"204": {"description": "nothing"}}}}}}
    op = contract(tmp_path, doc, name="api.json").match("GET", "/x")
    assert op.response_for(204).content is None
    up, ex = settings(mode=mode).upstreams[0], Exchange("GET")
    resp = response(204, [("Content-Type", "text/plain"), ("Content-Type", "text/html")])
    if error is None:
        assert check.check_contract(op, resp, b"", up, ex) == "violated"
    else:
        with pytest.raises(error) as info:
            check.check_contract(op, resp, b"", up, ex)
        assert info.value.reason == "unexpected_content_type"
    assert events(ex) == [("egress.contract_violation", {"reason": "unexpected_content_type", "instance_path": "",
                                                         "schema_path": "", "keyword": "unexpected_content_type"})]
    one_type = response(204, [("Content-Type", "text/plain")])
    assert check.check_contract(op, one_type, b"", up, Exchange("GET")) == "valid"


@pytest.mark.parametrize("fields,expected", [
    ([], None),
    ([("Content-Type", "text/plain")], "text/plain"),
    ([("Content-Type", "text/plain"), ("content-type", " TEXT/plain")], "text/plain"),
    ([("Content-Type", "text/plain"), ("Content-Type", "text/html")], check.AMBIGUOUS),
], ids=["absent", "one", "several-equal", "several-differing"])
def test_content_type_of(fields, expected):
    """response_facts calls it only for several fields; it answers for none and one too."""
    assert check.content_type_of(CIMultiDictProxy(CIMultiDict(fields))) == expected
