"""Sanitize cases written to kill mutants that survived the rest of the suite (scripts/mutants).

Each names the breakage it holds: a token hidden by JSON escapes, a token in a `+json` body, a
query value containing `=`, a partner token inside a redacted string, the event name bound.
"""

from pathlib import Path

import orjson
import pytest
from multidict import CIMultiDict

from egress.config import settings_from_dict
from egress.errors import InternalTokenInBody
from egress.exchange import Exchange
from egress.sanitize import REDACTED, Sanitizer
from tests.fakes import INTERNAL_ISSUER, make_jwt

INTERNAL = make_jwt(INTERNAL_ISSUER)
PARTNER = make_jwt("https://partner.example")


def make(mode="block", **sanitize):
    settings = settings_from_dict({
        "sanitize": {"internal_jwt_issuers": [INTERNAL_ISSUER], "on_internal_token_in_body": mode, **sanitize},
        "upstreams": [{"name": "pay", "url": "https://api.pay.example/v1"}],
    }, base_dir=Path("."), environ={})
    return Sanitizer(settings)


def escaped(token: str) -> str:
    """The token with its first dot written as a JSON escape: invisible to a byte scan."""
    return token.replace(".", "\\u002e", 1)


# content type, body: every JSON media type is parsed, so escapes cannot hide a token
ESCAPED_BLOCKED = [
    ("json", "application/json"),
    ("json-with-charset", "application/json; charset=utf-8"),
    ("json-any-case", "Application/JSON"),
    ("vendor-plus-json", "application/vnd.api+json"),
    ("problem-plus-json-with-params", "application/problem+json; charset=utf-8; q=1"),
]


@pytest.mark.parametrize("ctype", [c[1] for c in ESCAPED_BLOCKED], ids=[c[0] for c in ESCAPED_BLOCKED])
def test_escaped_token_in_any_json_body_is_blocked(ctype):
    raw = ('{"note": "' + escaped(INTERNAL) + '"}').encode()
    assert INTERNAL.encode() not in raw
    with pytest.raises(InternalTokenInBody) as err:
        make("block").body(raw, ctype, Exchange("POST"))
    assert err.value.reason == "internal_token_in_body"


def test_escaped_token_found_beside_a_plain_partner_token():
    raw = ('{"partner": "' + PARTNER + '", "note": "' + escaped(INTERNAL) + '"}').encode()
    with pytest.raises(InternalTokenInBody):
        make("block").body(raw, "application/json", Exchange("POST"))


def test_escaped_token_in_a_key_is_blocked():
    raw = ('{"' + escaped(INTERNAL) + '": 1}').encode()
    with pytest.raises(InternalTokenInBody):
        make("block").body(raw, "application/json", Exchange("POST"))


@pytest.mark.parametrize("ctype", [None, "", "text/plain", "application/octet-stream"],
                         ids=["none", "empty", "text", "binary"])
def test_non_json_bodies_are_byte_scanned(ctype):
    assert make("block").body(b"a \\u002e b", ctype, Exchange("POST")) == b"a \\u002e b"
    with pytest.raises(InternalTokenInBody):
        make("block").body(f"x {INTERNAL} y".encode(), ctype, Exchange("POST"))


def test_invalid_json_with_escapes_is_still_byte_scanned():
    raw = b'{"a": "\\u0041", ' + INTERNAL.encode() + b"}"      # not JSON, plain token in it
    with pytest.raises(InternalTokenInBody):
        make("block").body(raw, "application/json", Exchange("POST"))


def test_redact_keeps_a_partner_token_in_the_same_string():
    san = make("redact")
    raw = orjson.dumps({"note": f"{PARTNER} and {INTERNAL}", "other": PARTNER})
    out = orjson.loads(san.body(raw, "application/json", Exchange("POST")))
    assert out == {"note": f"{PARTNER} and {REDACTED}", "other": PARTNER}


def test_redact_of_escaped_token_rewrites_json():
    out = make("redact").body(('{"a": "' + escaped(INTERNAL) + '"}').encode(), "application/json",
                              Exchange("POST"))
    assert orjson.loads(out) == {"a": REDACTED}


QUERY = [
    ("value-with-equals-stripped", "access_token=abc=def&a=1", "a=1"),
    ("kept-value-with-equals-unchanged", "a=x=y&access_token=z", "a=x=y"),
    ("name-only-stripped", "access_token&a=1", "a=1"),
    ("empty-pairs-kept", "a=1&&b=2", "a=1&&b=2"),
]


@pytest.mark.parametrize("case", QUERY, ids=[c[0] for c in QUERY])
def test_query_pairs_split_on_the_first_equals(case):
    _, raw, expected = case
    assert make().query(raw, Exchange("GET")) == expected


def test_event_name_of_a_long_header_is_bounded_to_64_characters():
    name = "X-" + "a" * 90
    ex = Exchange("GET")
    out = make().headers(CIMultiDict([(name, INTERNAL), ("Accept", "x")]), _up(), ex)
    assert list(out.keys()) == ["Accept"]
    stripped = [e for e in ex.events if e.name == "egress.token_stripped"]
    assert [e.attrs["name"] for e in stripped] == [name.lower()[:64]]


def _up():
    settings = settings_from_dict({"upstreams": [{"name": "pay", "url": "https://api.pay.example/v1"}]},
                                  base_dir=Path("."), environ={})
    return settings.upstreams[0]


# ------------------------------------------------------------------ the events, exactly
# On-call reads these: where and which kind, never a value; an internal JWT makes the exchange an
# anomaly (always traced), a configured strip does not.

def _cred_sanitizer():
    settings = settings_from_dict({
        "sanitize": {"internal_jwt_issuers": [INTERNAL_ISSUER], "on_internal_token_in_body": "redact"},
        "upstreams": [{"name": "pay", "url": "https://api.pay.example/v1",
                       "credential": {"header": "X-Api-Key", "value": "k"}}],
    }, base_dir=Path("."), environ={})
    return Sanitizer(settings), settings.upstreams[0]


def strip(where, name, kind):
    return ("egress.token_stripped", {"where": where, "name": name, "kind": kind})


EVENT_CASES = [
    ("headers-configured-only", "headers", [("Cookie", "a"), ("X-Internal-User", "u"), ("Accept", "x")],
     [strip("header", "cookie", "configured"), strip("header", "x-internal-user", "configured")], False),
    ("headers-jwt-and-credential-spelling", "headers", [("X-Thing", INTERNAL), ("X_Api_Key", "c")],
     [strip("header", "x-thing", "internal_jwt"), strip("header", "x-api-key", "credential_header")], True),
    ("query-configured-only", "query", "access_token=a&a=1&api_key[]=z;b=2",
     [strip("query", "access_token", "configured"), strip("query", "api_key", "configured")], False),
    ("query-jwt", "query", "a=1&t=" + INTERNAL,
     [strip("query", "t", "internal_jwt")], True),
    ("body-redacted", "body", b'{"a": "' + INTERNAL.encode() + b'"}',
     [("egress.token_stripped", {"where": "body", "kind": "internal_jwt", "action": "redact"})], True),
]


@pytest.mark.parametrize("case", EVENT_CASES, ids=[c[0] for c in EVENT_CASES])
def test_strip_events_name_where_and_kind_only(case):
    _, stage, given, events, anomalous = case
    san, up = _cred_sanitizer()
    ex = Exchange("POST")
    if stage == "headers":
        san.headers(CIMultiDict(given), up, ex)
    elif stage == "query":
        san.query(given, ex)
    else:
        san.body(given, "application/json", ex)
    assert [(e.name, e.attrs) for e in ex.events] == events
    assert ex.anomalous is anomalous


def test_path_token_event():
    san, _ = _cred_sanitizer()
    ex = Exchange("GET")
    with pytest.raises(Exception) as err:
        san.path("/charges/" + INTERNAL, ex)
    assert getattr(err.value, "reason", None) == "internal_token_in_path"
    assert [(e.name, e.attrs) for e in ex.events] == [("egress.internal_token_in_path",
                                                       {"where": "path", "kind": "internal_jwt"})]
    assert ex.anomalous is True
