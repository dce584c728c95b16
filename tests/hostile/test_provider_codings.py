"""Hostile content codings: decode exactly what the caller's client decodes, then check that.

A provider controls `Content-Encoding` and the compressed bytes.  Every named case is served by a
real aiohttp provider on 127.0.0.1 to an upstream with a compact contract (enforce, or `mode:
off`: limits apply there too); the caller is `requests` (urllib3 decodes every gzip member and
every field).  Each case asserts status, reason and contract verdict, that what a caller decodes
is what egress checked, and that a normal request through the same egress still works.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import zlib

import pytest
import requests
import yaml
from aiohttp import web

from tests.conftest import base_config
from tests.hostile.conftest import MiB, assert_still_serves, good_upstream, hostile_upstream

VALID = b'{"id": "ch_1", "amount": 5}'
OVER = b'{"id": "ch_1", "amount": 999999}'  # amount maximum 1000
CHARGE = {"type": "object", "required": ["id", "amount"],
          "properties": {"id": {"type": "string"}, "amount": {"type": "integer", "maximum": 1000}}}


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zeros_member(size: int) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31, 9, zlib.Z_RLE)
    return b"".join([c.compress(bytes(MiB)) for _ in range(size // MiB)] + [c.flush()])


CUT = "cut"  # the answer started (200, chunked) and its connection was cut: no terminating chunk
BOMB_MEMBER = zeros_member(64 * MiB)  # ~64 KiB on the wire; max_decompressed_bytes is 8 MiB here

CASES = [
    # id, wire body, Content-Encoding fields, mode, status, reason, verdict, body the caller decodes
    ("single-member-control", gz(VALID), ["gzip"], "enforce", 200, None, "valid", VALID),
    ("json-split-across-two-members", gz(VALID[:10]) + gz(VALID[10:]), ["gzip"], "enforce", 200, None, "valid",
     VALID),
    ("second-member-breaks-the-contract", gz(VALID) + gz(OVER), ["gzip"], "enforce", 502, "invalid_json",
     "violated", None),
    ("second-member-is-a-bomb", gz(VALID) + BOMB_MEMBER, ["gzip"], "enforce", 502, "response_too_large",
     "unchecked", None),
    # mode off: nothing checks the body, so it is streamed (passthrough.py); past the window the bomb CUTS
    # the connection (the caller's client raises an incomplete-read error), the reason is recorded
    ("second-member-is-a-bomb-mode-off", gz(VALID) + BOMB_MEMBER, ["gzip"], "off", CUT, "response_too_large",
     "unchecked", None),
    ("x-gzip-second-member-hidden", gz(VALID) + gz(OVER), ["x-gzip"], "enforce", 502, "invalid_json", "violated",
     None),
    ("trailing-garbage-after-member", gz(VALID) + b'{"amount": 999999}', ["gzip"], "enforce", 502,
     "unexpected_content_encoding", "unchecked", None),
    ("trailing-garbage-after-member-mode-off", gz(VALID) + b"\x00garbage", ["gzip"], "off", 502,
     "unexpected_content_encoding", "unchecked", None),
    ("trailing-bytes-after-deflate-stream", zlib.compress(VALID) + b"tail", ["deflate"], "enforce", 502,
     "unexpected_content_encoding", "unchecked", None),
    ("identity-field-then-gzip-field", gz(VALID), ["identity", "gzip"], "enforce", 200, None, "valid", VALID),
    ("identity-field-then-gzip-field-violating", gz(OVER), ["identity", "gzip"], "enforce", 502,
     "contract_violation", "violated", None),
    ("gzip-field-then-gzip-field", gz(gz(VALID)), ["gzip", "gzip"], "enforce", 200, None, "valid", VALID),
    ("gzip-field-then-gzip-field-violating", gz(gz(OVER)), ["gzip", "gzip"], "enforce", 502,
     "contract_violation", "violated", None),
    # the inner gzip inflates past the cap within the read-ahead window: refused before any byte is sent
    ("stacked-in-one-field-bomb-inside", gz(gz(bytes(64 * MiB))), ["gzip, gzip"], "off", 502,
     "response_too_large", "unchecked", None),
    ("unsupported-coding-in-second-field", gz(VALID), ["gzip", "br"], "enforce", 502,
     "unexpected_content_encoding", "unchecked", None),
]


def serve(body: bytes, fields: list[str]):
    async def handler(request):
        resp = web.Response(body=body, headers={"Content-Type": "application/json"})
        for value in fields:
            resp.headers.add("Content-Encoding", value)
        return resp
    return handler


async def start(tmp_path, provider, proxy, good, handler, mode="enforce", observers=None):
    ops = {"GET /charges/{id}": {"responses": {"200": {"content_type": "application/json", "schema": CHARGE}}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"operations": ops}))
    bad = await provider(handler)
    doc = base_config([hostile_upstream(bad.url, contract="bad.yaml", mode=mode), good_upstream(good.url)],
                      contracts_dir=str(tmp_path))
    return bad, await proxy(doc, base_dir=tmp_path, observers=observers)


@pytest.mark.parametrize("accept", ["gzip, deflate", "identity"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_hostile_codings(case, accept, tmp_path, provider, proxy, good):
    name, body, fields, mode, status, reason, verdict, decoded = case
    seen = []
    bad, p = await start(tmp_path, provider, proxy, good, serve(body, fields), mode, observers=[seen.append])
    get = functools.partial(requests.get, p.url + "/bad/charges/ch_1", timeout=10,
                            headers={"X-Egress-Caller": "checkout", "Accept-Encoding": accept})
    if status == CUT:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            await asyncio.to_thread(get)
        await asyncio.sleep(0.05)
        ex = seen[-1]
        assert (ex.status, ex.reason, ex.stream.end, ex.contract) == (200, reason, reason, verdict)
        assert any(e.name == "egress.limit_exceeded" and e.attrs["limit"] == "max_decompressed_bytes"
                   for e in ex.events)
        assert bad.hits == 1
        await assert_still_serves(p)
        return
    resp = await asyncio.to_thread(get)
    assert resp.status_code == status, resp.text[:300]
    assert resp.headers.get("X-Egress-Error") == reason
    assert resp.headers["X-Egress-Contract"] == verdict
    if reason is None:
        assert resp.content == decoded  # what the caller's client decodes is what egress checked
    else:
        assert resp.json()["reason"] == reason and b"999999" not in resp.content
    assert bad.hits == 1
    await assert_still_serves(p)
