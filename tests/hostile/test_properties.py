"""Properties (hypothesis): the loaders never crash, and a credential never leaves for another origin.

1. `settings_from_dict` / `load_settings` on arbitrary documents, and on mutations of a valid one:
   a Settings or a ConfigError, nothing else.
2. `load_contract` on arbitrary YAML/JSON contract files: a Contract or a ConfigError.
3. Redirect chains across two loopback providers named `127.0.0.1` and `localhost`, follow on or
   off: the partner credential only ever arrives at the upstream's own origin (127.0.0.1:port).
"""

from __future__ import annotations

import copy
import json

import pytest
import requests
import yaml
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egress import app as egress_app
from egress.config import load_settings, settings_from_dict
from egress.contracts import load_contract
from egress.errors import ConfigError
from tests.conftest import REPO, base_config
from tests.fakes import BackgroundLoop, FakeProvider

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["http://", "https://x:99999/", "http://[::1", "${X}",
                                                           "off", "*", "127.0.0.1:0", "-1", "enforce"]))
json_like = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=20)

VALID = base_config([{
    "name": "pay", "url": "http://127.0.0.1:9/v1", "callers": ["checkout"], "mode": "report",
    "credential": {"header": "Authorization", "value": "Bearer ${TOKEN}"},
    "timeout": {"connect": 1, "total": 2}, "retry": {"attempts": 2, "on_status": [503]},
    "limits": {"max_response_bytes": 10}, "redirects": {"follow": True, "allow_hosts": ["a"]},
    "allow_private_addresses": ["10.0.0.0/8"],
}], callers={"hmac_keys": {"checkout": "${KEY}"}, "max_skew": 10})
ENV = {"TOKEN": "t", "KEY": "k" * 16}

def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


PATHS = list(_paths(VALID))[1:]


def _set(doc, path, value):
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def check_loader(doc):
    try:
        result = settings_from_dict(doc, base_dir=REPO / "config", environ=ENV)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return
    assert result.upstreams


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(json_like)
def test_config_loader_never_crashes_on_arbitrary_documents(doc):
    check_loader(doc)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(PATHS), json_like), min_size=1, max_size=3))
def test_config_loader_never_crashes_on_mutations_of_a_valid_document(mutations):
    doc = copy.deepcopy(VALID)
    for path, value in mutations:
        try:
            _set(doc, path, value)
        except (KeyError, IndexError, TypeError):
            continue
    check_loader(doc)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(max_size=200), json_like.map(lambda d: yaml.safe_dump(d, allow_unicode=True))))
def test_load_settings_never_crashes_on_arbitrary_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "egress.yaml"
    path.write_text(text, errors="surrogateescape")
    try:
        load_settings(path, ENV)
    except ConfigError:
        pass


ONCE_CRASHED = [
    ("url-unclosed-ipv6-bracket", base_config([{"name": "pay", "url": "http://[::1"}])),
    ("url-port-out-of-range", base_config([{"name": "pay", "url": "http://x:99999/v1"}])),
    ("upstreams-true", {"upstreams": True}),
    ("upstreams-number", {"upstreams": 3}),
]


@pytest.mark.parametrize("case", ONCE_CRASHED, ids=[c[0] for c in ONCE_CRASHED])
def test_inputs_that_once_crashed_the_loader(case):
    _, doc = case
    with pytest.raises(ConfigError):
        settings_from_dict(doc, base_dir=REPO / "config", environ={})


# ------------------------------------------------------------------ contracts

schema_like = st.recursive(
    st.one_of(scalars, st.fixed_dictionaries({"type": st.sampled_from(["object", "string", "integer", "nope", 3])}),
              st.fixed_dictionaries({"$ref": st.sampled_from(["#/x", "other.json", "http://example.invalid/s",
                                                               "#", "../../etc/passwd", "schemas/none.json"])})),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(
        st.sampled_from(["type", "properties", "items", "$ref", "required", "allOf", "x", "pattern"]), inner,
        max_size=3)), max_leaves=12)
operation_keys = st.one_of(st.sampled_from(["GET /charges/{id}", "POST /x", "GET /{a}/{a}", "BREW /", "GET",
                                            "GET /x/{", "get /lower"]), st.text(max_size=15))
contract_docs = st.one_of(
    json_like,
    st.fixed_dictionaries({"operations": st.dictionaries(operation_keys, st.one_of(json_like, st.fixed_dictionaries(
        {"responses": st.dictionaries(st.sampled_from(["200", "4XX", "default", "99", "2xx", "abc"]),
                                      st.one_of(json_like, st.fixed_dictionaries({"schema": schema_like})),
                                      max_size=3)})), max_size=3)}),
    st.fixed_dictionaries({"openapi": st.sampled_from(["3.0.3", "3.1.0", "2.0", 3.1]),
                           "paths": st.dictionaries(st.sampled_from(["/a", "/b/{id}", "x"]), json_like, max_size=2)}),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(contract_docs, st.sampled_from(["yaml", "json"]))
def test_contract_loader_never_crashes(tmp_path_factory, doc, fmt):
    d = tmp_path_factory.mktemp("contracts")
    path = d / f"c.{fmt}"
    path.write_text(yaml.safe_dump(doc) if fmt == "yaml" else json.dumps(doc, default=str))
    try:
        load_contract(path, contracts_dir=d, base_path="/v1")
    except ConfigError as exc:
        assert exc.problems


# ------------------------------------------------------------------ credentials and redirects

CREDENTIAL = "Bearer partner-credential-PROPERTY-MARKER"
TARGETS = ["up-127", "up-localhost", "other-127", "other-localhost"]
step = st.tuples(st.sampled_from(TARGETS), st.sampled_from([301, 302, 303, 307, 308]), st.booleans())


@pytest.fixture(scope="module")
def two_hosts():
    """The upstream (credential for http://127.0.0.1:<A>) and another provider <B>, both on loopback;
    each redirects along the chain written in the path: /v1/c/<target>-<status>-<relative>/.../end."""
    bg = BackgroundLoop()
    fakes = {}

    def make_handler(me):
        async def handler(request):
            parts = request.path.split("/c/", 1)[1].split("/") if "/c/" in request.path else ["end"]
            first, rest = parts[0], "/".join(parts[1:])
            if first == "end" or not first:
                return web.json_response({"at": me})
            target, status, relative = first.rsplit("-", 2)
            who, name = target.split("-", 1)
            host = "127.0.0.1" if name == "127" else "localhost"
            port = fakes["up" if who == "up" else "other"].port
            path = f"/v1/c/{rest or 'end'}"
            same = (who == me and host == request.host.rsplit(":", 1)[0])
            location = path if (relative == "True" and same) else f"http://{host}:{port}{path}"
            return web.Response(status=int(status), headers={"Location": location})
        return handler

    fakes["up"] = bg.run(FakeProvider(make_handler("up")).start())
    fakes["other"] = bg.run(FakeProvider(make_handler("other")).start())
    proxies = {}
    for follow in (True, False):
        doc = base_config([{
            "name": "pay", "url": f"http://127.0.0.1:{fakes['up'].port}/v1", "callers": ["*"],
            "allow_private_addresses": ["127.0.0.1/32", "::1/128"], "retry": {"attempts": 1},
            "credential": {"header": "Authorization", "value": CREDENTIAL},
            "redirects": {"follow": follow, "max_hops": 4,
                          "allow_hosts": [f"localhost:{f.port}" for f in fakes.values()]},
        }])
        s = settings_from_dict(copy.deepcopy(doc), base_dir=REPO / "config", environ={})
        proxies[follow] = bg.run(egress_app.start(s, data_port=0, admin_port=0))
    yield fakes, {k: f"http://127.0.0.1:{r.data_port}" for k, r in proxies.items()}
    for r in proxies.values():
        bg.run(r.drain(0.5))
    for f in fakes.values():
        bg.run(f.stop())
    bg.close()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(step, max_size=6), st.booleans(), st.sampled_from(["GET", "POST"]))
def test_credential_only_reaches_the_upstream_origin(two_hosts, chain, follow, method):
    fakes, urls = two_hosts
    marks = {name: len(f.requests) for name, f in fakes.items()}
    path = "/pay/c/" + "/".join(f"{t}-{s}-{r}" for t, s, r in chain) + ("/end" if chain else "end")
    resp = requests.request(method, urls[follow] + path, headers={"X-Egress-Caller": "checkout"},
                            data=b"{}" if method == "POST" else None, allow_redirects=False, timeout=10)
    assert resp.status_code in (200, 301, 302, 303, 307, 308, 502), resp.text
    if resp.status_code == 502:
        assert resp.json()["reason"] == "redirect_blocked"
    upstream_authority = f"127.0.0.1:{fakes['up'].port}"
    for name, fake in fakes.items():
        for seen in fake.requests[marks[name]:]:
            if CREDENTIAL in seen.headers.getall("Authorization", []):
                assert name == "up" and seen.headers["Host"] == upstream_authority, (chain, follow, seen.headers)
    assert len(fakes["up"].requests) > marks["up"]  # the first request always reaches the upstream
