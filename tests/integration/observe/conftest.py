"""Fixtures of the observability tests: the real proxy with an Observability attached, fake
providers and a real OTLP/HTTP receiver, all on 127.0.0.1 port 0."""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from egress import app as egress_app
from egress.config import settings_from_dict
from egress.observe.logs import JsonFormatter
from egress.observe.observe import Observability
from tests.fakes import Served

REPO = Path(__file__).resolve().parents[3]


class Proxy:
    def __init__(self, running, obs, session) -> None:
        self.running, self.obs, self.session = running, obs, session

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.running.data_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.running.admin_port}"

    async def call(self, method, path, *, caller="checkout", headers=None, **kw):
        headers = dict(headers or {})
        if caller is not None:
            headers.setdefault("X-Egress-Caller", caller)
        async with self.session.request(method, self.url + path, headers=headers, **kw) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    async def admin_get(self, path):
        async with self.session.get(self.admin + path) as resp:
            assert resp.status == 200, path
            return await resp.read()


@pytest.fixture
def contracts_dir(tmp_path):
    target = tmp_path / "contracts"
    shutil.copytree(REPO / "contracts", target)
    return target


@pytest.fixture
def providers(provider):
    """make(handler) -> a started FakeProvider (tests/conftest.py's `provider`)."""
    return provider


@pytest.fixture
async def egress(contracts_dir):
    """make(upstreams, environ=, tracer_provider=) -> Proxy with obs wired as the lead wires it."""
    started = []

    async def make(upstreams, *, environ=None, tracer_provider=None, **top) -> Proxy:
        doc = {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "contracts_dir": "contracts",
               "sanitize": {"internal_jwt_issuers": ["https://auth.internal.example"]},
               "upstreams": copy.deepcopy(upstreams), **top}
        settings = settings_from_dict(doc, base_dir=contracts_dir.parent, environ={})
        obs = Observability(settings, tracer_provider=tracer_provider, environ=environ or {})
        running = await egress_app.start(settings, data_port=0, admin_port=0, observability=obs)
        proxy = Proxy(running, obs, aiohttp.ClientSession(auto_decompress=False))
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        await proxy.session.close()
        await proxy.running.drain(0.5)  # also shuts obs down


class OtlpReceiver(Served):
    """POST /v1/traces: ExportTraceServiceRequest bodies, decoded and kept."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict] = []

    async def start(self) -> "OtlpReceiver":
        await self.serve(self.handle, post="/v1/traces")
        return self

    @property
    def url(self) -> str:
        return self.base_url

    async def handle(self, request: web.Request) -> web.Response:
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(await request.read())
        self.requests.append(msg)
        self.headers.append(dict(request.headers))
        return web.Response(body=b"", content_type="application/x-protobuf")

    def spans(self):
        for req in self.requests:
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        yield rs.resource, span


@pytest.fixture
async def otlp_receiver():
    async with OtlpReceiver() as receiver:
        yield receiver


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.formatter = JsonFormatter()

    def emit(self, record) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def egress_logs():
    logger = logging.getLogger("egress")
    handler, old = Captured(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)
