"""Property: an internal token, wherever a caller puts it, never reaches the provider.

Hypothesis places an internal JWT in any header (any case, repeated), in the query (any
name, percent-encoded or not), or in a JSON body at any depth; the fake provider records
every byte it receives and the token must be absent from all of it.
"""

import copy
import urllib.parse

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress import app as egress_app
from egress.config import settings_from_dict
from tests.conftest import REPO, base_config
from tests.fakes import INTERNAL_ISSUER, BackgroundLoop, FakeProvider, make_jwt

TOKEN = make_jwt(INTERNAL_ISSUER, sub="marker-subject-7f3a")
PAYLOAD_SEGMENT = TOKEN.split(".")[1]

header_names = st.from_regex(r"\AX-[A-Za-z][A-Za-z0-9-]{0,20}\Z").filter(
    lambda n: n.lower() not in ("x-egress-caller",))
case_flip = st.sampled_from(["lower", "upper", "title", "same"])
query_names = st.from_regex(r"\A[a-z_]{1,12}\Z")
json_leaf_paths = st.recursive(
    st.just("TOKEN"),
    lambda inner: st.one_of(st.lists(inner, min_size=1, max_size=3),
                            st.dictionaries(st.from_regex(r"\A[a-z]{1,8}\Z"), inner, min_size=1, max_size=3)),
    max_leaves=6,
)


def _case(name: str, flip: str) -> str:
    return {"lower": name.lower(), "upper": name.upper(), "title": name.title(), "same": name}[flip]


def _embed(node, token):
    if node == "TOKEN":
        return token
    if isinstance(node, list):
        return [_embed(v, token) for v in node]
    return {k: _embed(v, token) for k, v in node.items()}


@st.composite
def placements(draw):
    where = draw(st.sampled_from(["header", "header-repeated", "bearer-header", "query", "query-encoded", "body"]))
    return where, draw(header_names), draw(case_flip), draw(query_names), draw(json_leaf_paths)


@pytest.fixture(scope="module")
def live():
    """Provider + proxy on a background loop, shared by all hypothesis examples."""
    bg = BackgroundLoop()
    fake = bg.run(FakeProvider().start())
    doc = base_config(
        [{"name": "pay", "url": fake.url + "/v1", "callers": ["*"], "allow_private_addresses": True}],
        sanitize={"internal_jwt_issuers": [INTERNAL_ISSUER], "on_internal_token_in_body": "redact"})
    settings_ = settings_from_dict(copy.deepcopy(doc), base_dir=REPO / "config", environ={})
    running = bg.run(egress_app.start(settings_, data_port=0, admin_port=0))
    yield fake, f"http://127.0.0.1:{running.data_port}"
    bg.run(running.drain(0.5))
    bg.run(fake.stop())
    bg.close()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(placements())
def test_internal_token_never_reaches_provider(live, placement):
    fake, base = live
    where, hname, flip, qname, shape = placement
    headers = [("X-Egress-Caller", "checkout")]
    path, body = "/pay/things", None
    if where == "header":
        headers.append((_case(hname, flip), TOKEN))
    elif where == "header-repeated":
        headers += [(_case(hname, flip), "harmless"), (_case(hname, flip), TOKEN)]
    elif where == "bearer-header":
        headers.append((_case(hname, flip), f"Bearer {TOKEN}"))
    elif where == "query":
        path += f"?{qname}={TOKEN}&keep=1"
    elif where == "query-encoded":
        path += f"?{qname}=" + "".join(f"%{b:02X}" for b in TOKEN.encode()) + "&keep=1"
    else:
        body = orjson.dumps(_embed(shape, TOKEN))
        headers.append(("Content-Type", "application/json"))
    before = fake.hits
    with requests.Session() as s:
        req = requests.Request("POST", base + path, data=body).prepare()
        for k, v in headers:  # requests folds repeated names; add them raw
            req.headers[k] = v if k not in req.headers else req.headers[k] + ", " + v
        resp = s.send(req, timeout=10)
    assert resp.status_code == 200, resp.text
    assert fake.hits == before + 1
    seen = fake.requests[-1]
    wire = seen.path_qs + "\n" + "\n".join(f"{k}: {v}" for k, v in seen.headers.items()) + "\n"
    wire = wire.encode() + seen.body
    assert TOKEN.encode() not in wire and PAYLOAD_SEGMENT.encode() not in wire
    assert PAYLOAD_SEGMENT not in urllib.parse.unquote(seen.path_qs)
    if where.startswith("query"):
        assert "keep=1" in seen.path_qs  # only the token's parameter was dropped


# ------------------------------------------------------------------ configured names, ordinary values
# Not only JWTs: a header or query parameter NAMED in config is stripped whatever its value, in
# any case, repeated, and (query) with its name percent-encoded byte by byte.

STRIP_HEADERS = ["authorization", "cookie", "proxy-authorization", "x-internal-*", "x-forwarded-for",
                 "forwarded", "baggage", "x-session-id", "x-corp-*"]
STRIP_QUERY = ["access_token", "id_token", "api_key", "session"]
configured_header = st.sampled_from(["Authorization", "Cookie", "Proxy-Authorization", "X-Internal-User",
                                     "X-Internal-Tenant-Id", "X-Forwarded-For", "Forwarded", "Baggage",
                                     "X-Session-Id", "X-Corp-Anything", "X-Corp-"])
configured_query = st.sampled_from(STRIP_QUERY)
ordinary_values = st.from_regex(r"\A[A-Za-z0-9 ._~-]{1,24}\Z")


@pytest.fixture(scope="module")
def live_configured():
    bg = BackgroundLoop()
    fake = bg.run(FakeProvider().start())
    doc = base_config(
        [{"name": "pay", "url": fake.url + "/v1", "callers": ["*"], "allow_private_addresses": True}],
        sanitize={"internal_jwt_issuers": [INTERNAL_ISSUER], "strip_headers": STRIP_HEADERS,
                  "strip_query": STRIP_QUERY})
    settings_ = settings_from_dict(copy.deepcopy(doc), base_dir=REPO / "config", environ={})
    running = bg.run(egress_app.start(settings_, data_port=0, admin_port=0))
    yield fake, running.data_port
    bg.run(running.drain(0.5))
    bg.run(fake.stop())
    bg.close()


def _encode_name(name: str, which: list[bool]) -> str:
    return "".join(f"%{ord(c):02X}" if (which[i % len(which)] if which else False) else c
                   for i, c in enumerate(name))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(hname=configured_header, flip=case_flip, repeat=st.integers(1, 3), qname=configured_query,
       qflip=case_flip, encode=st.lists(st.booleans(), max_size=8), qrepeat=st.integers(1, 2),
       value=ordinary_values)
def test_configured_names_are_stripped_whatever_the_value(live_configured, hname, flip, repeat, qname, qflip,
                                                           encode, qrepeat, value):
    import http.client

    fake, port = live_configured
    marker = f"MRK{abs(hash((hname, value))) % 10**8:08d}{value}"   # ordinary text, easy to find
    name = _encode_name(_case(qname, qflip), encode)
    query = "&".join([f"{name}={urllib.parse.quote(marker)}"] * qrepeat + ["keep=1"])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", f"/pay/things?{query}", skip_accept_encoding=True)
        conn.putheader("X-Egress-Caller", "checkout")
        for _ in range(repeat):
            conn.putheader(_case(hname, flip), marker)
        conn.putheader("X-Plain", "kept")
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()[:300]
        resp.read()
    finally:
        conn.close()
    seen = fake.requests[-1]
    wire = urllib.parse.unquote(seen.path_qs) + "\n" + "\n".join(f"{k}: {v}" for k, v in seen.headers.items())
    assert marker not in wire and urllib.parse.quote(marker) not in seen.path_qs
    assert seen.headers.get("X-Plain") == "kept" and seen.path_qs.endswith("keep=1")
