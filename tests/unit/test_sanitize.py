from pathlib import Path

import orjson
import pytest
from multidict import CIMultiDict

from egress import credentials
from egress.config import settings_from_dict
from egress.errors import InternalTokenInBody
from egress.exchange import Exchange
from egress.sanitize import REDACTED, Sanitizer
from tests.fakes import INTERNAL_ISSUER, make_jwt

INTERNAL = make_jwt(INTERNAL_ISSUER)
PARTNER = make_jwt("https://partner.example")


def make(mode="block", **up):
    settings = settings_from_dict({
        "sanitize": {"internal_jwt_issuers": [INTERNAL_ISSUER], "on_internal_token_in_body": mode},
        "upstreams": [{"name": "pay", "url": "https://api.pay.example/v1",
                       "credential": {"header": "Authorization", "value": "Bearer partner-cred"}, **up}],
    }, base_dir=Path("."), environ={})
    return Sanitizer(settings), settings.upstreams[0]


HEADER_CASES = [
    ("hop-by-hop", [("Connection", "close"), ("Keep-Alive", "5"), ("TE", "trailers"), ("Upgrade", "h2c")], []),
    ("named-in-connection", [("Connection", "X-Secret-Thing"), ("X-Secret-Thing", "1")], []),
    ("configured-exact-any-case", [("COOKIE", "a=b"), ("x-forwarded-for", "10.0.0.1")], []),
    ("configured-wildcard", [("X-Internal-User", "42"), ("x-INTERNAL-tenant", "t")], []),
    ("caller-header-never-forwarded", [("X-Egress-Caller", "checkout")], []),
    ("trace-headers-not-propagated", [("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"),
                                      ("baggage", "user=1")], []),
    ("internal-jwt-in-any-header", [("X-Custom", f"Bearer {INTERNAL}")], []),
    ("repeated-header-one-bad", [("X-Custom", "fine"), ("X-Custom", INTERNAL)], [("X-Custom", "fine")]),
    ("partner-jwt-kept", [("X-Partner-Token", PARTNER)], [("X-Partner-Token", PARTNER)]),
    ("plain-kept", [("Accept", "application/json"), ("Idempotency-Key", "k1")],
     [("Accept", "application/json"), ("Idempotency-Key", "k1")]),
]


@pytest.mark.parametrize("case", HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_headers(case):
    _, incoming, kept = case
    san, up = make()
    ex = Exchange("GET")
    out = san.headers(CIMultiDict(incoming), up, ex)
    assert "Authorization" not in out  # sanitize strips it; credentials inject the partner's
    credentials.inject(out, up, ex)
    assert [(k, v) for k, v in out.items() if k != "Authorization"] == kept
    assert out.getall("Authorization") == ["Bearer partner-cred"]  # injected, replacing any caller value
    names = [e.name for e in ex.events]
    assert "egress.credential_injected" in names
    for e in ex.events:  # events carry names and kinds, never values
        assert INTERNAL not in repr(e.attrs) and "partner-cred" not in repr(e.attrs)


def test_caller_authorization_replaced_by_credential():
    san, up = make()
    ex = Exchange("GET")
    out = san.headers(CIMultiDict([("Authorization", "Bearer internal-session")]), up, ex)
    credentials.inject(out, up, ex)
    assert out.getall("Authorization") == ["Bearer partner-cred"]


def test_trace_headers_kept_when_upstream_opts_in():
    san, up = make(propagate_trace=True)
    tp = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    out = san.headers(CIMultiDict([("traceparent", tp)]), up, Exchange("GET"))
    assert out["traceparent"] == tp


QUERY_CASES = [
    ("configured", "access_token=abc&a=1", "a=1"),
    ("configured-any-case", "API_KEY=abc&a=1", "a=1"),
    ("internal-jwt-value", f"a=1&t={INTERNAL}", "a=1"),
    ("internal-jwt-percent-encoded", "t=" + "".join(f"%{b:02X}" for b in INTERNAL.encode()) + "&a=1", "a=1"),
    ("partner-jwt-kept", f"t={PARTNER}", f"t={PARTNER}"),
    ("raw-encoding-preserved", "q=%41%20b&x=", "q=%41%20b&x="),
    ("empty", "", ""),
]


@pytest.mark.parametrize("case", QUERY_CASES, ids=[c[0] for c in QUERY_CASES])
def test_query(case):
    _, raw, expected = case
    san, _ = make()
    assert san.query(raw, Exchange("GET")) == expected


BODY = {"order": {"items": [{"note": f"token {INTERNAL} here"}], "id": 7}}


def test_body_block_raises_before_sending():
    san, _ = make("block")
    with pytest.raises(InternalTokenInBody):
        san.body(orjson.dumps(BODY), "application/json", Exchange("POST"))


def test_body_redact_json_deep():
    san, _ = make("redact")
    out = san.body(orjson.dumps(BODY), "application/json; charset=utf-8", Exchange("POST"))
    assert INTERNAL.encode() not in out
    assert orjson.loads(out)["order"]["items"][0]["note"] == f"token {REDACTED} here"


def test_body_redact_json_unicode_escaped_token():
    san, _ = make("redact")
    escaped = INTERNAL.replace("e", "\\u0065", 1)  # invisible to a byte scan, visible after parsing
    raw = ('{"a": ["' + escaped + '"]}').encode()
    ex = Exchange("POST")
    out = san.body(raw, "application/json", ex)
    assert orjson.loads(out) == {"a": [REDACTED]}


def test_body_redact_form_bytes():
    san, _ = make("redact")
    out = san.body(f"a=1&t={INTERNAL}".encode(), "application/x-www-form-urlencoded", Exchange("POST"))
    assert out == f"a=1&t={REDACTED}".encode()


def test_body_report_passes_and_records():
    san, _ = make("report")
    ex = Exchange("POST")
    raw = orjson.dumps(BODY)
    assert san.body(raw, "application/json", ex) == raw
    assert ex.anomalous and ex.events[-1].attrs["action"] == "report"


def test_body_partner_token_untouched():
    san, _ = make("block")
    raw = orjson.dumps({"t": PARTNER})
    assert san.body(raw, "application/json", Exchange("POST")) == raw


def test_body_compressed_by_caller_is_inspected():
    import gzip

    from egress.errors import RequestEncodingNotSupported
    raw = gzip.compress(orjson.dumps(BODY))
    for mode in ("block", "redact"):  # a compressed body is never re-compressed: redact refuses
        san, _ = make(mode)
        with pytest.raises(InternalTokenInBody):
            san.body(raw, "application/json", Exchange("POST"), content_encoding="gzip")
    san, _ = make("block")
    clean = gzip.compress(b'{"a": 1}')
    assert san.body(clean, "application/json", Exchange("POST"), content_encoding="gzip") == clean
    with pytest.raises(RequestEncodingNotSupported):
        san.body(b"\x00\x01", "application/json", Exchange("POST"), content_encoding="br")


def test_body_redact_too_deep_refuses_instead_of_crashing():
    san, _ = make("redact")
    deep = "[" * 1000 + f'"{INTERNAL}"' + "]" * 1000
    with pytest.raises(InternalTokenInBody):
        san.body(deep.encode(), "application/json", Exchange("POST"))


def test_token_used_as_a_name_is_stripped_and_never_recorded():
    san, up = make()
    ex = Exchange("GET")
    out = san.headers(CIMultiDict([(INTERNAL, "1"), ("Accept", "x")]), up, ex)
    assert INTERNAL not in out and out["Accept"] == "x"
    assert san.query(f"{INTERNAL}=1&a=2", ex) == "a=2"
    payload = INTERNAL.split(".")[1]
    stripped = [e.attrs for e in ex.events if e.name == "egress.token_stripped"]
    assert [a["name"] for a in stripped] == ["(token)", "(token)"]
    assert not any(payload[:16].lower() in repr(e.attrs).lower() or INTERNAL[:16] in repr(e.attrs)
                   for e in ex.events)


PATH_CASES = [
    # id, raw relative path, refused?
    ("segment", f"/charges/{INTERNAL}", True),
    ("matrix-param", f"/charges/ch_1;token={INTERNAL}", True),
    ("percent-encoded-dots", "/c/" + INTERNAL.replace(".", "%2E"), True),
    ("double-encoded", "/c/" + INTERNAL.replace(".", "%252E"), True),
    ("triple-encoded", "/c/" + INTERNAL.replace(".", "%25252E"), True),
    ("partner-jwt-kept", f"/charges/{PARTNER}", False),
    ("file-name-kept", "/files/report.v2.pdf", False),
    ("plain-kept", "/charges/ch_1", False),
]


@pytest.mark.parametrize("case", PATH_CASES, ids=[c[0] for c in PATH_CASES])
def test_path(case):
    from egress.errors import InternalTokenInPath
    _, path, refused = case
    s, _ = make()
    ex = Exchange("GET")
    if not refused:
        s.path(path, ex)
        assert ex.events == []
        return
    with pytest.raises(InternalTokenInPath) as info:
        s.path(path, ex)
    assert info.value.reason == "internal_token_in_path" and info.value.status == 403
    assert [e.name for e in ex.events] == ["egress.internal_token_in_path"]
    assert INTERNAL not in str(ex.events[0].attrs) and INTERNAL not in info.value.detail


KEYS = [
    ("header-underscore", "header", "X-Internal_Token", "x-internal-token"),
    ("header-case", "header", "PROXY_AUTHORIZATION", "proxy-authorization"),
    ("query-brackets", "query", "access_token[]", "access_token"),
    ("query-encoded-brackets", "query", "access_token%5B%5D", "access_token"),
    ("query-index", "query", "access_token[0]", "access_token"),
    ("query-php-dot", "query", "access.token", "access_token"),
    ("query-hyphen-case", "query", "Access-Token", "access_token"),
]


@pytest.mark.parametrize("case", KEYS, ids=[c[0] for c in KEYS])
def test_names_compared_as_servers_read_them(case):
    from egress.sanitize import header_key, query_key
    _, kind, name, key = case
    assert (header_key if kind == "header" else query_key)(name) == key
