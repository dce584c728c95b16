"""Least privilege per operation: `grants` entries match the way contract paths do (the same
PathTable), by caller, `*` and token scope; malformed grants are config errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from egress.config import settings_from_dict
from egress.errors import ConfigError, OperationNotGranted
from egress.identity import Caller, Grants, authorize_operation

GRANTS = Grants((
    ("checkout", ("GET /charges/{id}", "POST /charges", "GET /charges/{id}/refunds", "GET /Calls/{Sid}.json")),
    ("billing", ("GET *", "* /invoices/{id}")),
    ("*", ("GET /health",)),
    ("scope:payments.write", ("POST /refunds",)),
))

CASES = [
    ("exact_template", "checkout", (), "GET", "/charges/ch_1", ("checkout", "GET /charges/{id}")),
    ("literal_path", "checkout", (), "POST", "/charges", ("checkout", "POST /charges")),
    ("percent_encoded_segment", "checkout", (), "GET", "/charges/ch%2F1", ("checkout", "GET /charges/{id}")),
    ("deeper_template", "checkout", (), "GET", "/charges/ch_1/refunds", ("checkout", "GET /charges/{id}/refunds")),
    ("mixed_segment", "checkout", (), "GET", "/Calls/CA1.json", ("checkout", "GET /Calls/{Sid}.json")),
    ("method_not_granted", "checkout", (), "DELETE", "/charges/ch_1", None),
    ("method_case_insensitive", "checkout", (), "post", "/charges", ("checkout", "POST /charges")),
    ("head_is_not_get", "checkout", (), "HEAD", "/charges/ch_1", None),
    ("param_needs_a_segment", "checkout", (), "GET", "/charges/", None),
    ("trailing_slash_is_another_path", "checkout", (), "POST", "/charges/", None),
    ("extra_segment", "checkout", (), "GET", "/charges/ch_1/capture", None),
    ("dot_dot_is_a_literal_segment", "checkout", (), "GET", "/charges/../admin", None),
    ("any_path_for_method", "billing", (), "GET", "/anything/at/all", ("billing", "GET *")),
    ("any_method_for_template", "billing", (), "PATCH", "/invoices/in_1", ("billing", "* /invoices/{id}")),
    ("any_method_not_other_paths", "billing", (), "POST", "/charges", None),
    ("everyone_entry", "reports", (), "GET", "/health", ("*", "GET /health")),
    ("caller_without_grants", "reports", (), "GET", "/charges/ch_1", None),
    ("scope_grants", "reports", ("payments.write",), "POST", "/refunds", ("scope:payments.write", "POST /refunds")),
    ("other_scope_does_not", "reports", ("payments.read",), "POST", "/refunds", None),
    ("scope_name_is_exact", "reports", ("payments.writer",), "POST", "/refunds", None),
]


@pytest.mark.parametrize("caller,scopes,method,path,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_grant_table(caller, scopes, method, path, expected):
    who = Caller(caller, frozenset(scopes), "jwt")
    if expected is None:
        with pytest.raises(OperationNotGranted) as exc:
            authorize_operation(GRANTS, who, method, path)
        assert (exc.value.status, exc.value.reason) == (403, "operation_not_granted")
        assert path not in exc.value.detail or path == "/"
    else:
        assert authorize_operation(GRANTS, who, method, path) == expected


def test_no_grants_means_every_operation_of_an_allowed_caller():
    assert authorize_operation(None, Caller("checkout"), "DELETE", "/anything") is None


def load(grants, identity="header"):
    doc = {"upstreams": [{"name": "pay", "url": "https://api.pay.example", "grants": grants}]}
    if identity != "header":
        doc["callers"] = {"identity": identity, "jwt": {"issuers": [
            {"issuer": "https://i.example", "jwks_url": "https://i.example/jwks", "audiences": ["egress"]}]}}
    return settings_from_dict(doc, base_dir=Path("."), environ={})


BAD = [
    ("no_method", {"checkout": ["/charges"]}, "upstreams[0].grants.checkout[0] must be 'METHOD /path'"),
    ("lowercase_method", {"checkout": ["get /charges"]}, "upstreams[0].grants.checkout[0] must be 'METHOD /path'"),
    ("relative_path", {"checkout": ["GET charges"]}, "upstreams[0].grants.checkout[0] path must start with '/'"),
    ("query", {"checkout": ["GET /charges?x=1"]}, "path must start with '/' (no query)"),
    ("unbalanced", {"checkout": ["GET /charges/{id"]}, "upstreams[0].grants.checkout[0] has unbalanced braces"),
    ("scope_without_jwt", {"scope:payments.read": ["GET *"]}, "scope grants need callers.identity: jwt"),
    ("bad_grantee", {"not a name": ["GET *"]}, "upstreams[0].grants"),
]


@pytest.mark.parametrize("grants,message", [(g, m) for _, g, m in BAD], ids=[i for i, _, _ in BAD])
def test_bad_grants_are_config_errors_naming_the_key(grants, message):
    with pytest.raises(ConfigError) as exc:
        load(grants)
    assert any(message in p for p in exc.value.problems), exc.value.problems


def test_scope_grants_with_jwt_identity_load():
    up = load({"scope:payments.read": ["GET *"], "checkout": ["GET /charges/{id}"]}, identity="jwt").upstreams[0]
    assert dict(up.grants) == {"scope:payments.read": ("GET *",), "checkout": ("GET /charges/{id}",)}
