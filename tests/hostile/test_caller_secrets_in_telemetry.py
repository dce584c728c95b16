"""Issue 12, request side: a caller's secrets never reach telemetry, and config errors never echo values.

Path words that look like secrets (`sk_live_…`, long random words, an internal JWT) are sent
through a real egress with tracing on; then /metrics, /admin/inventory, the access log and every
span attribute are searched for them.  Wrong-shaped configs holding a literal credential or HMAC
key go through the loader, `egress check-config` and `POST /admin/reload`; no output holds them.
"""

from __future__ import annotations

import copy
import logging

import aiohttp
import orjson
import pytest
import yaml
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from egress import app as egress_app
from egress import cli
from egress.config import load_settings, settings_from_dict
from egress.errors import ConfigError
from egress.observe.observe import Observability
from tests.conftest import REPO, base_config
from tests.fakes import INTERNAL_ISSUER, make_jwt
from tests.hostile.conftest import good_upstream

JWT = make_jwt(INTERNAL_ISSUER)
SECRET_WORDS = [
    # id, path segment a careless caller put its secret in, egress's answer
    ("stripe-live-key-lowercase", "sk_live_abcdefghijklmnopq", 200),
    ("random-lowercase-word", "qwhxkzmvtrplbnfdsg", 200),
    ("github-token", "ghp_abcdefghijklmnopqrstuvwx", 200),
    ("aws-access-key", "AKIAQWERTYUIOPASDFGH", 200),
    ("slack-token-in-matrix-position", "xoxb-abcdefghijklm", 200),
    ("internal-jwt", JWT, 403),
]


@pytest.fixture
async def traced(provider, good):
    fake = await provider()
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    doc = base_config([{"name": "pay", "url": fake.url + "/v1", "callers": ["checkout"],
                        "allow_private_addresses": True, "retry": {"attempts": 1}}, good_upstream(good.url)])
    settings = settings_from_dict(copy.deepcopy(doc), base_dir=REPO / "config", environ={})
    obs = Observability(settings, tracer_provider=tp, environ={"OTEL_TRACES_SAMPLER": "always_on"})
    running = await egress_app.start(settings, data_port=0, admin_port=0, observability=obs)
    session = aiohttp.ClientSession(auto_decompress=False)
    yield running, session, spans, fake
    await session.close()
    await running.drain(0.5)


@pytest.mark.parametrize("case", SECRET_WORDS, ids=[c[0] for c in SECRET_WORDS])
async def test_secret_looking_path_words_never_reach_telemetry(case, traced, caplog):
    _, word, status = case
    running, session, spans, fake = traced
    caplog.set_level(logging.INFO, logger="egress")
    data, admin = f"http://127.0.0.1:{running.data_port}", f"http://127.0.0.1:{running.admin_port}"
    url = yarl_url(f"{data}/pay/keys/{word}/usage")
    async with session.get(url, headers={"X-Egress-Caller": "checkout"}) as resp:
        assert resp.status == status, await resp.read()
    async with session.get(yarl_url(f"{data}/pay/keys/k/usage"), headers={"X-Egress-Caller": "checkout"}) as resp:
        assert resp.status == 200                                   # and a normal request still works
    async with session.get(admin + "/metrics") as resp:
        metrics = await resp.text()
    async with session.get(admin + "/admin/inventory") as resp:
        inventory = await resp.text()
    access = " ".join(orjson.dumps(getattr(r, "fields", {}), default=str).decode() for r in caplog.records)
    attributes = " ".join(str(dict(s.attributes)) + str([dict(e.attributes) for e in s.events])
                          for s in spans.get_finished_spans())
    assert "GET /keys/{id}/usage" in metrics and "/keys/{id}/usage" in inventory  # templated, not dropped
    assert '"operation":"GET /keys/{id}/usage"' in access
    for where, text in (("metrics", metrics), ("inventory", inventory), ("access log", access),
                        ("spans", attributes)):
        assert word not in text, where
    assert len(spans.get_finished_spans()) >= 2
    if status == 403:
        assert fake.hits == 1                                       # the token's request was never sent


def yarl_url(text: str):
    from yarl import URL
    return URL(text, encoded=True)


# ------------------------------------------------------------------ config errors never echo values

CRED = "sk_live_LITERALCREDENTIAL0123456789"
KEY = "literal-hmac-key-0123456789abcdef"
UP = {"name": "pay", "url": "https://api.pay.example/v1"}
WRONG_SHAPES = [
    # id, document, key path and expected shape named in the problem
    ("upstreams-as-mapping", {"upstreams": {"pay": {"url": "https://x", "credential": {
        "header": "Authorization", "value": CRED}}}}, "upstreams must be a list of upstreams"),
    ("upstream-as-string", {"upstreams": [f"https://user:{CRED}@api.pay.example"]}, "upstreams[0] must be a mapping"),
    ("callers-as-list", {"callers": [{"hmac_keys": {"checkout": KEY}}], "upstreams": [UP]},
     "callers must be a mapping"),
    ("credential-as-string", {"upstreams": [{**UP, "credential": CRED}]}, "upstreams[0].credential must be a mapping"),
    ("credential-as-list", {"upstreams": [{**UP, "credential": ["Authorization", CRED]}]},
     "upstreams[0].credential must be a mapping"),
    ("credential-with-unknown-key", {"upstreams": [{**UP, "credential": {"header": "A", "value": CRED, "v": CRED}}]},
     "upstreams[0].credential: unknown key"),
    ("hmac-keys-as-list", {"callers": {"hmac_keys": [KEY]}, "upstreams": [UP]},
     "callers.hmac_keys must be a mapping of caller name to key"),
    ("hmac-key-as-mapping", {"callers": {"hmac_keys": {"checkout": {"key": KEY}}}, "upstreams": [UP]},
     "callers.hmac_keys.checkout must be a string"),
    ("hmac-keys-written-the-wrong-way-round", {"callers": {"hmac_keys": {KEY: "checkout"}}, "upstreams": [UP]},
     "callers.hmac_keys (entry 1) must be at least 16 characters"),
    ("credential-pasted-as-mode", {"upstreams": [{**UP, "mode": CRED}]}, "upstreams[0].mode must be one of"),
    ("credential-pasted-as-name", {"upstreams": [{**UP, "name": CRED}]}, "upstreams[0].name must match"),
    ("credential-pasted-as-key", {"upstreams": [{**UP, CRED: "x"}]}, "upstreams[0]: unknown key"),
    ("credential-in-malformed-url", {"upstreams": [{**UP, "url": f"https://u:{CRED}@h:port"}]},
     "upstreams[0].url is not a valid URL"),
]


def no_secret(text: str) -> None:
    assert CRED not in text and KEY not in text
    assert CRED[8:24] not in text and KEY[8:24] not in text      # nor a piece of either


@pytest.mark.parametrize("case", WRONG_SHAPES, ids=[c[0] for c in WRONG_SHAPES])
def test_config_errors_name_the_shape_never_the_value(case, tmp_path, capsys):
    _, doc, expected = case
    with pytest.raises(ConfigError) as info:
        settings_from_dict(copy.deepcopy(doc), base_dir=tmp_path, environ={})
    text = "\n".join(info.value.problems)
    assert expected in text, text
    no_secret(text)
    path = tmp_path / "egress.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert cli.main(["check-config", "--config", str(path)]) == 1
    out = capsys.readouterr()
    assert expected in out.err
    no_secret(out.out + out.err)


async def test_admin_reload_refuses_a_wrong_shape_without_echoing_it(tmp_path, provider):
    fake = await provider()
    path = tmp_path / "egress.yaml"
    good_doc = base_config([{"name": "pay", "url": fake.url + "/v1", "allow_private_addresses": True}])
    path.write_text(yaml.safe_dump(good_doc))
    running = await egress_app.start(load_settings(path, {}), data_port=0, admin_port=0)
    try:
        async with aiohttp.ClientSession() as session:
            for _, doc, expected in WRONG_SHAPES:
                path.write_text(yaml.safe_dump(base_config([]) | doc))
                async with session.post(f"http://127.0.0.1:{running.admin_port}/admin/reload") as resp:
                    text = await resp.text()
                    assert resp.status == 422 and expected in text, text
                    no_secret(text)
            path.write_text(yaml.safe_dump(good_doc))                # a good config still reloads
            async with session.post(f"http://127.0.0.1:{running.admin_port}/admin/reload") as resp:
                assert resp.status == 200, await resp.text()
            async with session.get(f"http://127.0.0.1:{running.data_port}/pay/x",
                                   headers={"X-Egress-Caller": "checkout"}) as resp:
                assert resp.status == 200
    finally:
        await running.drain(0.5)
