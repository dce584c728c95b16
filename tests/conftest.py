import copy
import socket
from pathlib import Path

import aiohttp
import pytest

from egress import app as egress_app
from egress.config import settings_from_dict
from tests.fakes import INTERNAL_ISSUER, FakeProvider

REPO = Path(__file__).resolve().parent.parent


def base_config(upstreams: list[dict], **top) -> dict:
    doc = {
        "listen": "127.0.0.1:0",
        "admin_listen": "127.0.0.1:0",
        "sanitize": {"internal_jwt_issuers": [INTERNAL_ISSUER]},
        "upstreams": upstreams,
    }
    doc.update(top)
    return doc


class ProxyHandle:
    def __init__(self, running, session):
        self.running = running
        self.session = session

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.running.data_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.running.admin_port}"

    @property
    def state(self):
        return self.running.state

    def request(self, method, path, *, caller="checkout", headers=None, **kw):
        headers = dict(headers or {})
        if caller is not None:
            headers.setdefault("X-Egress-Caller", caller)
        return self.session.request(method, self.url + path, headers=headers, **kw)


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free loopback port, stopped after the test (see redis_server.py)."""
    from tests.redis_server import RedisServer
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def provider():
    """A fresh fake provider per test; call .start() after setting .handler (or use as is)."""
    providers = []

    async def make(handler=None, **kw) -> FakeProvider:
        p = FakeProvider(**kw) if handler is None else FakeProvider(handler, **kw)
        providers.append(p)
        return await p.start()

    yield make
    for p in providers:
        await p.stop()


@pytest.fixture
async def proxy():
    """Start egress in-process from a config dict; stopped (drained) after the test."""
    started = []

    async def make(doc: dict, *, environ=None, base_dir=None, observers=None, resolver=None) -> ProxyHandle:
        settings = settings_from_dict(copy.deepcopy(doc), base_dir=base_dir or REPO / "config",
                                      environ=environ or {})
        running = await egress_app.start(settings, data_port=0, admin_port=0, observers=observers,
                                         resolver=resolver)
        session = aiohttp.ClientSession(auto_decompress=False)
        handle = ProxyHandle(running, session)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        await handle.session.close()
        await handle.running.drain(0.5)


@pytest.fixture
def unanswered_port():
    """A loopback port whose accept queue is full: a new connection attempt hangs (SYN dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    yield port
    for s in fillers:
        s.close()
    listener.close()
