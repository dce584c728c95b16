"""Sanitize at its edges (issue 19, mutation-tested): what each strip records, the caller's own
token header, comma lists in `Connection`, spaces in query names, bodies that are not JSON,
partner tokens beside internal ones, the decoded-size cap, the errors' words, the decode bound.

Each case holds an outcome a caller or an upstream would see and the reason for it.
"""

import gzip
from pathlib import Path

import orjson
import pytest
from multidict import CIMultiDict

from egress.config import settings_from_dict
from egress.errors import InternalTokenInBody, InternalTokenInPath, RequestEncodingNotSupported, RequestTooLarge
from egress.exchange import Exchange
from egress.sanitize import REDACTED, Sanitizer
from tests.fakes import INTERNAL_ISSUER, make_jwt

INTERNAL = make_jwt(INTERNAL_ISSUER)
PARTNER = make_jwt("https://partner.example")
LONG_CRED = "X-" + "k" * 70


def make(mode="block", issuers=(INTERNAL_ISSUER,), callers=None, credential=None):
    doc = {
        "sanitize": {"internal_jwt_issuers": list(issuers), "on_internal_token_in_body": mode},
        "upstreams": [{"name": "pay", "url": "https://api.pay.example/v1",
                       **({"credential": {"header": credential, "value": "k"}} if credential else {})}],
    }
    if callers is not None:
        doc["callers"] = callers
    settings = settings_from_dict(doc, base_dir=Path("."), environ={})
    return Sanitizer(settings), settings.upstreams[0]


def strip(name, kind):
    return ("egress.token_stripped", {"where": "header", "name": name, "kind": kind})


# ------------------------------------------------------------------ headers: what goes out, what is recorded
HEADERS = [
    # id, credential header, incoming, kept, events, anomalous
    ("credential-spelling-alone-is-no-anomaly", "X-Api-Key", [("X_API_KEY", "c"), ("Accept", "x")],
     [("Accept", "x")], [strip("x-api-key", "credential_header")], False),
    ("headers-after-a-credential-spelling-still-go", "X-Api-Key",
     [("X-Api-Key", "c"), ("Accept", "x"), ("Idempotency-Key", "i")],
     [("Accept", "x"), ("Idempotency-Key", "i")], [strip("x-api-key", "credential_header")], False),
    ("long-credential-name-recorded-in-64", LONG_CRED, [(LONG_CRED, "c")], [],
     [strip(LONG_CRED.lower()[:64], "credential_header")], False),
    ("long-configured-name-recorded-in-64", None, [("X-Internal-" + "a" * 80, "v"), ("Accept", "x")],
     [("Accept", "x")], [strip(("x-internal-" + "a" * 80)[:64], "configured")], False),
    ("connection-list-without-spaces", None,
     [("Connection", "close,X-Hop-A, X-Hop-B"), ("X-Hop-A", "1"), ("X-Hop-B", "2"), ("Accept", "x")],
     [("Accept", "x")], [], False),
]


@pytest.mark.parametrize("case", HEADERS, ids=[c[0] for c in HEADERS])
def test_header_strips_and_their_events(case):
    _, credential, incoming, kept, events, anomalous = case
    san, up = make(credential=credential)
    ex = Exchange("GET")
    out = san.headers(CIMultiDict(incoming), up, ex)
    assert list(out.items()) == kept
    assert [(e.name, e.attrs) for e in ex.events] == events
    assert ex.anomalous is anomalous


@pytest.mark.parametrize("name,stripped", [("X-7-a-anything", True), ("X-7-c-anything", False),
                                          ("X-77-a-x", False)], ids=["matches", "class-differs", "one-char-only"])
def test_a_pattern_using_every_wildcard_is_a_pattern(name, stripped):
    settings = settings_from_dict({"sanitize": {"strip_headers": ["x-?-[ab]*"]},
                                   "upstreams": [{"name": "pay", "url": "https://api.pay.example/v1"}]},
                                  base_dir=Path("."), environ={})
    ex = Exchange("GET")
    out = Sanitizer(settings).headers(CIMultiDict([(name, "v")]), settings.upstreams[0], ex)
    assert (name not in out) is stripped
    assert [e.attrs.get("kind") for e in ex.events] == (["configured"] if stripped else [])


def test_the_callers_own_jwt_header_is_never_forwarded():
    callers = {"identity": "jwt", "jwt": {"header": "X-Caller-Token", "issuers": [
        {"issuer": "https://kubernetes.default.svc", "jwks_url": "https://kubernetes.default.svc/jwks",
         "audiences": ["egress"]}]}}
    san, up = make(callers=callers)
    ex = Exchange("GET")
    out = san.headers(CIMultiDict([("X-Caller-Token", "opaque-session"), ("x_caller_token", "again"),
                                   ("Accept", "x")]), up, ex)
    assert list(out.items()) == [("Accept", "x")]
    assert ex.events == [] and ex.anomalous is False  # egress's own business: not a strip to report


# ------------------------------------------------------------------ query names with spaces
@pytest.mark.parametrize("raw", ["access+token=x&a=1", "access%20token=x&a=1", "Access%20Token[]=x&a=1"],
                         ids=["plus", "percent-20", "space-case-brackets"])
def test_a_space_in_a_query_name_reads_as_underscore(raw):
    ex = Exchange("GET")
    assert make()[0].query(raw, ex) == "a=1"
    assert [(e.attrs["name"], e.attrs["kind"]) for e in ex.events] == [("access_token", "configured")]


def test_a_long_configured_query_name_is_recorded_in_64():
    name = "partner_session_" + "x" * 70
    settings = settings_from_dict({"sanitize": {"strip_query": [name]},
                                   "upstreams": [{"name": "pay", "url": "https://api.pay.example/v1"}]},
                                  base_dir=Path("."), environ={})
    ex = Exchange("GET")
    assert Sanitizer(settings).query(f"{name.upper()}=v&a=1", ex) == "a=1"
    assert [(e.name, e.attrs) for e in ex.events] == [
        ("egress.token_stripped", {"where": "query", "name": name[:64], "kind": "configured"})]
    assert ex.anomalous is False


# ------------------------------------------------------------------ bodies
def test_no_issuers_means_a_body_is_not_opened_at_all():
    san, _ = make(issuers=())
    ex = Exchange("POST")
    raw = b"\x00\x01 compressed some way egress cannot read"
    assert san.body(raw, "application/json", ex, content_encoding="br") == raw  # nothing to look for
    assert ex.events == []


@pytest.mark.parametrize("mode", ["block", "report"])
def test_a_body_token_not_redacted_is_recorded_as_in_body(mode):
    san, _ = make(mode)
    ex = Exchange("POST")
    raw = orjson.dumps({"a": INTERNAL})
    if mode == "block":
        with pytest.raises(InternalTokenInBody):
            san.body(raw, "application/json", ex)
    else:
        assert san.body(raw, "application/json", ex) == raw
    assert [(e.name, e.attrs) for e in ex.events] == [
        ("egress.internal_token_in_body", {"where": "body", "kind": "internal_jwt", "action": mode})]
    assert ex.anomalous is True


NOT_JSON = [
    # id, content type, body, what is sent: bytes kept as written, only the internal token replaced
    ("no-content-type", None, '{"a": "%s",  "b": 1}' % INTERNAL, '{"a": "%s",  "b": 1}' % REDACTED),
    ("empty-content-type", "", '{"a": "%s"}' % INTERNAL, '{"a": "%s"}' % REDACTED),
    ("text-plain", "text/plain", '{"a": "%s"}' % INTERNAL, '{"a": "%s"}' % REDACTED),
    ("invalid-json", "application/json", '{"a": "%s",, }' % INTERNAL, '{"a": "%s",, }' % REDACTED),
    ("form-partner-kept", "application/x-www-form-urlencoded", f"p={PARTNER}&t={INTERNAL}&q={PARTNER}",
     f"p={PARTNER}&t={REDACTED}&q={PARTNER}"),
]


@pytest.mark.parametrize("case", NOT_JSON, ids=[c[0] for c in NOT_JSON])
def test_redacting_a_body_that_is_not_json_rewrites_only_the_token(case):
    _, ctype, raw, sent = case
    ex = Exchange("POST")
    assert make("redact")[0].body(raw.encode(), ctype, ex) == sent.encode()
    assert [e.attrs["action"] for e in ex.events] == ["redact"]


@pytest.mark.parametrize("raw", ['{"a": "caf\\u00e9", "b": ["x", {"c": "\\u0041"}]}', '["\\u0041", [1, [2]]]'],
                         ids=["escapes-in-object", "escapes-in-nested-lists"])
def test_json_escapes_without_a_token_pass_untouched(raw):
    ex = Exchange("POST")
    assert make("block")[0].body(raw.encode(), "application/json", ex) == raw.encode()
    assert ex.events == [] and ex.anomalous is False


def test_an_escaped_token_inside_nested_lists_is_found():
    raw = '{"a": [1, ["x", "' + INTERNAL.replace(".", "\\u002e", 1) + '"]]}'
    with pytest.raises(InternalTokenInBody) as err:
        make("block")[0].body(raw.encode(), "application/json", Exchange("POST"))
    assert err.value.reason == "internal_token_in_body"


DEFAULT_CAP = 50 * 1024 * 1024  # the config default of limits.max_decompressed_bytes


@pytest.mark.parametrize("size,refused", [(DEFAULT_CAP, False), (DEFAULT_CAP + 1, True)],
                         ids=["at-the-default-cap", "one-byte-over"])
def test_the_default_decoded_cap_is_50_mib(size, refused):
    raw = gzip.compress(b"\0" * size, compresslevel=1)
    san, _ = make("block")
    if not refused:
        assert san.body(raw, "application/octet-stream", Exchange("POST"), content_encoding="gzip") == raw
        return
    with pytest.raises(RequestTooLarge) as err:
        san.body(raw, "application/octet-stream", Exchange("POST"), content_encoding="gzip")
    assert err.value.reason == RequestTooLarge.reason


# ------------------------------------------------------------------ what a refused caller reads
ERRORS = [
    ("block", lambda s: s.body(orjson.dumps({"a": INTERNAL}), "application/json", Exchange("POST")),
     InternalTokenInBody, "the request body carries an internal token; nothing was sent"),
    ("too-deep", lambda s: s.body(("[" * 1000 + f'"{INTERNAL}"' + "]" * 1000).encode(), "application/json",
                                  Exchange("POST")),
     InternalTokenInBody, "the request body carries an internal token too deep to redact; nothing was sent"),
    ("encoding", lambda s: s.body(b"\x00", None, Exchange("POST"), content_encoding="br"),
     RequestEncodingNotSupported, "request Content-Encoding must be gzip or deflate so egress can inspect it"),
    ("too-large", lambda s: s.body(gzip.compress(b"\0" * 2048), None, Exchange("POST"), content_encoding="gzip",
                                   max_decoded=1024),
     RequestTooLarge, "decompressed request body is over the limit of 1024 bytes"),
    ("path", lambda s: s.path("/c/" + INTERNAL, Exchange("GET")),
     InternalTokenInPath, "the request path carries an internal token; nothing was sent"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_refusals_say_what_happened_without_the_token(case):
    _, call, error, detail = case
    mode = "redact" if case[0] == "too-deep" else "block"
    with pytest.raises(error) as err:
        call(make(mode)[0])
    assert (err.value.reason, err.value.detail) == (error.reason, detail)


# ------------------------------------------------------------------ the path's decode bound
def encoded(token: str, layers: int) -> str:
    dot = "%2E"
    for _ in range(layers - 1):
        dot = dot.replace("%", "%25")
    return token.replace(".", dot)


@pytest.mark.parametrize("layers,refused", [(1, True), (3, True), (4, False)],
                         ids=["one-layer", "three-layers", "four-layers-beyond-the-bound"])
def test_path_tokens_are_decoded_through_three_layers(layers, refused):
    """Up to three layers of percent-encoding are undone (docstring of Sanitizer.path); a fourth
    is past what a server behind a provider decodes, and is sent as written."""
    ex = Exchange("GET")
    path = "/c/" + encoded(INTERNAL, layers)
    if refused:
        with pytest.raises(InternalTokenInPath):
            make()[0].path(path, ex)
        assert [e.name for e in ex.events] == ["egress.internal_token_in_path"]
    else:
        make()[0].path(path, ex)
        assert ex.events == []
