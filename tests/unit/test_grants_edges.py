"""Grants at their edges (egress/identity/grants.py, issue 19): the tables are built inside each
test (so the code under test runs in the test), duplicate shapes keep the first entry, a grant
the loader did not validate is still a config error naming its upstream, every upstream's grants
are compiled, and each refusal carries its reason and a detail naming the method."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from egress.config import settings_from_dict
from egress.errors import CallerNotAllowed, ConfigError, OperationNotGranted
from egress.identity import Caller, Grants, authorize, authorize_operation, compile_grants


def grants() -> Grants:
    return Grants((
        ("checkout", ("GET /charges/{id}", "GET /charges/{charge}", "POST *", "POST *")),
        ("*", ("DELETE /tmp/{id}",)),
        ("scope:refunds", ("POST /refunds",)),
        ("scoped:other", ("GET /other",)),
    ))


CASES = [
    # id, caller, scopes, method, path, (grantee, entry) or None when refused
    ("template", "checkout", (), "GET", "/charges/ch_1", ("checkout", "GET /charges/{id}")),
    ("duplicate-shape-keeps-the-first", "checkout", (), "GET", "/charges/ch_2", ("checkout", "GET /charges/{id}")),
    ("any-path", "checkout", (), "POST", "/anything", ("checkout", "POST *")),
    ("any-path-is-per-method", "checkout", (), "PUT", "/anything", None),
    ("templates-are-per-method", "checkout", (), "PATCH", "/charges/ch_1", None),
    ("everyone", "reports", (), "DELETE", "/tmp/t1", ("*", "DELETE /tmp/{id}")),
    ("scope", "reports", ("refunds",), "POST", "/refunds", ("scope:refunds", "POST /refunds")),
    ("scope-prefix-is-exactly-scope-colon", "reports", ("other",), "GET", "/other", None),
    ("grantee-named-like-a-scope-is-a-caller", "scoped:other", (), "GET", "/other", ("scoped:other", "GET /other")),
    ("no-scope", "reports", (), "POST", "/refunds", None),
]


@pytest.mark.parametrize("caller,scopes,method,path,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_grant_tables_built_here(caller, scopes, method, path, expected):
    who = Caller(caller, frozenset(scopes), "jwt")
    if expected is not None:
        assert authorize_operation(grants(), who, method, path) == expected
        return
    with pytest.raises(OperationNotGranted) as info:
        authorize_operation(grants(), who, method.lower(), path)
    assert info.value.reason == "operation_not_granted"
    assert info.value.detail == f"{method} on this path is not granted to this caller (upstream grants)"


def test_a_scope_grant_is_found_among_several():
    g = Grants((("scope:a", ("GET /a",)), ("scope:b", ("GET /b",)), ("checkout", ("GET /c",))))
    assert g.scopes == ("scope:a", "scope:b")
    assert authorize_operation(g, Caller("x", frozenset({"b"}), "jwt"), "GET", "/b") == ("scope:b", "GET /b")


def load(upstreams, identity="header"):
    doc = {"upstreams": upstreams}
    return settings_from_dict(doc, base_dir=Path("."), environ={})


def test_every_upstream_with_grants_is_compiled():
    settings = load([{"name": "open", "url": "https://open.example"},
                     {"name": "pay", "url": "https://api.pay.example", "grants": {"checkout": ["GET /charges/{id}"]}},
                     {"name": "mail", "url": "https://mail.example", "grants": {"*": ["POST /send"]}}])
    compiled = compile_grants(settings)
    assert sorted(compiled) == ["mail", "pay"]
    assert authorize_operation(compiled["pay"], Caller("checkout"), "GET", "/charges/1") == (
        "checkout", "GET /charges/{id}")
    assert authorize_operation(compiled["mail"], Caller("any"), "POST", "/send") == ("*", "POST /send")


def test_a_bad_template_that_reached_compile_grants_is_a_config_error():
    """The loader refuses malformed grants; compile_grants does not rely on it."""
    settings = load([{"name": "open", "url": "https://open.example"},
                     {"name": "pay", "url": "https://api.pay.example", "grants": {"checkout": ["GET /charges"]}}])
    bad = dataclasses.replace(settings.upstreams[1], grants=(("checkout", ("GET /charges/{id",)),))
    broken = dataclasses.replace(settings, upstreams=(settings.upstreams[0], bad))
    with pytest.raises(ConfigError) as info:
        compile_grants(broken)
    assert info.value.problems == ["upstreams[1].grants: unbalanced braces in segment '{id'"]
    with pytest.raises(ConfigError):
        compile_grants(dataclasses.replace(settings, upstreams=(bad,)))


def test_caller_outside_the_allowlist_is_refused_naming_the_upstream():
    up = load([{"name": "pay", "url": "https://api.pay.example", "callers": ["checkout"]}]).upstreams[0]
    authorize(up, "checkout")
    with pytest.raises(CallerNotAllowed) as info:
        authorize(up, "billing")
    assert (info.value.reason, info.value.detail) == ("caller_not_allowed",
                                                       "caller is not in the callers list of upstream pay")
