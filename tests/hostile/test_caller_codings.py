"""A caller's compressed request body: egress sees the bytes sent (aiohttp's server-side
auto-decompression is off), inspects them with the same decoder as responses (every field,
every gzip member), blocks an internal token hidden anywhere in them, and re-sends a clean
body exactly as received.  Each named case asserts status and reason, what the provider got,
and that a normal request afterwards works.
"""

from __future__ import annotations

import gzip
import zlib

import pytest

from tests.conftest import base_config
from tests.fakes import INTERNAL_ISSUER, FakeProvider, make_jwt
from tests.hostile.conftest import assert_still_serves, good_upstream, hostile_upstream, read_problem

TOKEN = make_jwt(INTERNAL_ISSUER)
CLEAN = b'{"amount": 5, "currency": "eur"}'
DIRTY = b'{"amount": 5, "note": "' + TOKEN.encode() + b'"}'


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@pytest.fixture
async def raw_body_provider():
    """A provider that keeps each request's body exactly as it arrived on the wire (no decompression)."""
    async with FakeProvider(auto_decompress=False) as provider:
        yield provider


def seen(provider: FakeProvider) -> list[tuple[list[str], bytes]]:
    """(Content-Encoding fields, body as on the wire) of each request the provider got."""
    return [(r.headers.getall("Content-Encoding", []), r.body) for r in provider.requests]


CASES = [
    # id, body sent, Content-Encoding fields, status, reason
    ("gzip-clean-passes-as-sent", gz(CLEAN), ["gzip"], 200, None),
    ("deflate-clean-passes-as-sent", zlib.compress(CLEAN), ["deflate"], 200, None),
    ("two-fields-clean-passes-as-sent", gz(gz(CLEAN)), ["gzip", "gzip"], 200, None),
    ("gzip-token-blocked", gz(DIRTY), ["gzip"], 403, "internal_token_in_body"),
    ("deflate-token-blocked", zlib.compress(DIRTY), ["deflate"], 403, "internal_token_in_body"),
    ("token-in-second-member-blocked", gz(CLEAN) + gz(DIRTY), ["gzip"], 403, "internal_token_in_body"),
    ("token-under-identity-then-gzip-fields", gz(DIRTY), ["identity", "gzip"], 403, "internal_token_in_body"),
    ("token-under-two-gzip-fields", gz(gz(DIRTY)), ["gzip", "gzip"], 403, "internal_token_in_body"),
    ("trailing-bytes-after-member-refused", gz(CLEAN) + b"\x00tail", ["gzip"], 415,
     "request_encoding_not_supported"),
    ("brotli-cannot-be-inspected", b"\x0b\x01\x80", ["br"], 415, "request_encoding_not_supported"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_compressed_request_body(case, raw_body_provider, proxy, good):
    name, body, fields, status, reason = case
    p = await proxy(base_config([hostile_upstream(raw_body_provider.url), good_upstream(good.url)]))
    headers = [("X-Egress-Caller", "checkout"), ("Content-Type", "application/json")]
    headers += [("Content-Encoding", f) for f in fields]
    async with p.session.post(p.url + "/bad/charges", data=body, headers=headers) as resp:
        assert resp.status == status, await resp.read()
        if reason is None:
            assert seen(raw_body_provider) == [(fields, body)]  # re-sent exactly as received
        else:
            assert (await read_problem(resp))["reason"] == reason
            assert seen(raw_body_provider) == []  # nothing was sent
    await assert_still_serves(p)
