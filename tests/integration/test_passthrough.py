"""Bodies no contract checks stream through (passthrough.py): binary downloads, every coding, caps that cut,
callers that go away, and the validated JSON bodies that are still read whole.  Real sockets: a fake
provider writes each body over time; the callers are aiohttp, requests and httpx."""

import asyncio
import gzip
import hashlib
import subprocess
import time
import zlib

import aiohttp
import httpx
import orjson
import pytest
import requests
import yaml
from aiohttp import web

from egress.passthrough import WINDOW
from egress.send.bodies import CHUNK
from tests.conftest import base_config
from tests.hostile.conftest import MiB, RssWatch
from tests.stream_fakes import Script

OCTET = "application/octet-stream"
SCHEMA = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}


def blob(size: int, seed: bytes = b"egress") -> bytes:
    """Bytes that do not compress to nothing (so wire and decoded sizes both pass the window)."""
    out, block = [], seed
    for _ in range(size // 512 + 1):
        block = hashlib.sha256(block).digest()
        out.append(block * 8 + bytes(256))
    return b"".join(out)[:size]


def write_contract(tmp_path):
    json_200 = {"200": {"content_type": "application/json", "schema": SCHEMA}}
    ops = {
        "GET /doc": {"responses": json_200},
        "GET /download": {"responses": {"200": {"content_type": [OCTET, "image/*"]}}},
        "GET /report.csv": {"responses": {"200": {"content_type": "text/csv"}}, "mode": "report"},
        "GET /off": {"responses": json_200, "mode": "off"},
    }
    (tmp_path / "files.yaml").write_text(yaml.safe_dump({"operations": ops}))


async def start(tmp_path, provider, proxy, handler, seen=None, **over):
    fake = await provider(handler)
    write_contract(tmp_path)
    upstream = {"name": "files", "url": fake.url + "/v1", "callers": ["*"], "allow_private_addresses": True,
                "contract": "files.yaml", "unmatched": "allow", "retry": {"attempts": 1},
                "limits": {"max_response_bytes": 4 * MiB, "max_decompressed_bytes": 8 * MiB}, **over}
    observers = [seen.append] if seen is not None else None
    p = await proxy(base_config([upstream], contracts_dir=str(tmp_path)), base_dir=tmp_path, observers=observers)
    return fake, p


async def settled(seen):
    for _ in range(100):  # the exchange is observed when its stream ends
        if seen:
            return seen[-1]
        await asyncio.sleep(0.02)
    raise AssertionError("no exchange observed")


async def test_a_50mb_download_in_mode_off_streams_with_flat_memory(tmp_path, provider, proxy):
    block = blob(MiB)
    script = Script([(0.01, block)] * 50, content_type=OCTET)
    seen = []
    fake, p = await start(tmp_path, provider, proxy, script.handler, seen, mode="off",
                          limits={"max_response_bytes": 64 * MiB, "max_decompressed_bytes": 64 * MiB})
    watch, digest, received, first = RssWatch(), hashlib.sha256(), 0, None
    async with p.request("GET", "/files/download") as resp:
        assert resp.status == 200
        assert "Content-Length" not in resp.headers and resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.headers["X-Egress-Contract"] == "unchecked"
        async for data in resp.content.iter_any():
            first = first or time.monotonic()
            received += len(data)
            digest.update(data)
    growth = watch.growth()
    assert received == 50 * MiB and digest.digest() == hashlib.sha256(block * 50).digest()
    assert first < script.sent_at[-1] - 0.3  # the caller had bytes while the provider was still sending
    assert growth < 32 * MiB, growth  # buffered, the proxy would hold 50 MiB (twice: wire and answer)
    assert p.state.inflight.peak <= WINDOW + MiB  # only the read-ahead window was charged
    ex = await settled(seen)
    assert (ex.status, ex.reason, ex.stream.kind, ex.stream.end) == (200, None, "passthrough", "complete")
    assert ex.stream.bytes == ex.response_bytes == 50 * MiB and ex.stream.first_byte_s is not None


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


BODY = blob(300_000)
CODINGS = [
    # id, Content-Encoding fields, wire body
    ("identity", [], BODY),
    ("identity-field", ["identity"], BODY),
    ("gzip", ["gzip"], gz(BODY)),
    ("x-gzip", ["x-gzip"], gz(BODY)),
    ("gzip-three-members", ["gzip"], gz(BODY[:1000]) + gz(BODY[1000:200_000]) + gz(BODY[200_000:])),
    ("deflate-zlib-wrapped", ["deflate"], zlib.compress(BODY)),
    ("deflate-raw", ["deflate"], raw_deflate(BODY)),
    ("stacked-in-one-field", ["gzip, deflate"], zlib.compress(gz(BODY))),
    ("stacked-in-two-fields", ["gzip", "gzip"], gz(gz(BODY))),
]


def serve(body: bytes, fields: list[str], content_type: str = OCTET, *, step: int = 16384, delay: float = 0.001,
          status: int = 200):
    async def handler(request):
        resp = web.StreamResponse(status=status, headers={"Content-Type": content_type})
        for value in fields:
            resp.headers.add("Content-Encoding", value)
        await resp.prepare(request)
        for start in range(0, len(body), step):
            await resp.write(body[start:start + step])
            await asyncio.sleep(delay)
        await resp.write_eof()
        return resp
    return handler


@pytest.mark.parametrize("accept", ["gzip, deflate", "identity"])
@pytest.mark.parametrize("case", CODINGS, ids=[c[0] for c in CODINGS])
async def test_every_coding_is_streamed_decoded(case, accept, tmp_path, provider, proxy):
    name, fields, wire = case
    seen = []
    fake, p = await start(tmp_path, provider, proxy, serve(wire, fields), seen)
    async with p.request("GET", "/files/download", headers={"Accept-Encoding": accept}) as resp:
        assert resp.status == 200 and resp.headers["X-Egress-Contract"] == "valid"
        assert "Content-Encoding" not in resp.headers and "Content-Length" not in resp.headers
        assert await resp.read() == BODY  # decoded by egress under the caps: the caller gets identity
    ex = await settled(seen)
    assert (ex.stream.kind, ex.stream.end, ex.stream.bytes) == ("passthrough", "complete", len(BODY))


async def test_unsupported_coding_is_refused_before_any_byte(tmp_path, provider, proxy):
    fake, p = await start(tmp_path, provider, proxy, serve(BODY, ["br"]))
    async with p.request("GET", "/files/download") as resp:
        assert (resp.status, resp.headers["X-Egress-Error"]) == (502, "unexpected_content_encoding")
        assert resp.headers["Content-Type"] == "application/problem+json"


FIVE_MIB = blob(5 * MiB)


def over_cap(request):  # 4 MiB cap: 5 MiB, chunked
    return serve(FIVE_MIB, [])(request)


def stalls(request):  # 256 KiB, then nothing for longer than timeout.idle
    return serve(blob(256 * 1024), [], step=256 * 1024, delay=3.0)(request)


async def drops(request):  # 256 KiB of a declared 1 MiB, then the connection closes
    resp = web.StreamResponse(headers={"Content-Type": OCTET, "Content-Length": str(MiB)})
    await resp.prepare(request)
    await resp.write(blob(256 * 1024))
    await asyncio.sleep(0.05)
    request.transport.close()
    return resp


def corrupt(request):  # a gzip body that turns to garbage after 256 KiB
    return serve(gz(BODY)[:200_000] + b"\x00garbage" * 1000, ["gzip"])(request)


def bomb(request):  # a gzip member inflating to 64 MiB, cap 8 MiB
    c = zlib.compressobj(6, zlib.DEFLATED, 31, 9, zlib.Z_RLE)
    member = b"".join([c.compress(bytes(MiB)) for _ in range(64)] + [c.flush()])
    return serve(member, ["gzip"])(request)


CUTS = [
    # id, handler, upstream overrides, reason, span event that says why
    ("over-max-response-bytes", over_cap, {}, "response_too_large",
     ("egress.limit_exceeded", "limit", "max_response_bytes")),
    ("bomb-over-max-decompressed-bytes", bomb, {}, "response_too_large",
     ("egress.limit_exceeded", "limit", "max_decompressed_bytes")),
    ("idle-gap", stalls, {"timeout": {"idle": 0.3}}, "upstream_timeout", ("egress.stream_cut", "bound", "idle")),
    ("whole-stream-too-long", stalls, {"timeout": {"stream": 0.5}}, "upstream_timeout",
     ("egress.stream_cut", "bound", "stream")),
    ("provider-drops-mid-body", drops, {}, "upstream_unavailable",
     ("egress.stream_cut", "reason", "upstream_unavailable")),
    ("corrupt-after-the-window", corrupt, {}, "unexpected_content_encoding",
     ("egress.stream_cut", "reason", "unexpected_content_encoding")),
]


def fetch_requests(url):
    try:
        resp = requests.get(url, headers={"X-Egress-Caller": "checkout"}, timeout=10)
    except requests.exceptions.ChunkedEncodingError:  # urllib3: IncompleteRead
        return
    raise AssertionError(f"a complete answer: {resp.status_code} {resp.headers} {resp.content[:200]!r}")


def fetch_httpx(url):
    try:
        resp = httpx.get(url, headers={"X-Egress-Caller": "checkout"}, timeout=10)
    except httpx.RemoteProtocolError:  # "peer closed connection without sending complete message body"
        return
    raise AssertionError(f"a complete answer: {resp.status_code} {resp.headers} {resp.content[:200]!r}")


def fetch_curl(url):
    done = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H", "X-Egress-Caller: checkout", "--max-time", "10",
                           url], capture_output=True, text=True)
    assert done.returncode == 18, done  # CURLE_PARTIAL_FILE: "transfer closed with outstanding read data"


@pytest.mark.parametrize("fetch", [fetch_requests, fetch_httpx, fetch_curl], ids=["requests", "httpx", "curl"])
@pytest.mark.parametrize("case", CUTS, ids=[c[0] for c in CUTS])
async def test_a_cut_stream_is_incomplete_for_every_client_and_recorded(case, fetch, tmp_path, provider, proxy):
    name, handler, over, reason, (event, key, value) = case
    seen = []
    fake, p = await start(tmp_path, provider, proxy, handler, seen, **over)
    await asyncio.to_thread(fetch, p.url + "/files/download")
    ex = await settled(seen)
    assert (ex.status, ex.reason, ex.stream.kind, ex.stream.end) == (200, reason, "passthrough", reason)
    assert ex.anomalous and any(e.name == event and e.attrs[key] == value for e in ex.events), ex.events
    assert fake.hits == 1


async def test_cut_reason_reaches_the_metrics(tmp_path, provider, proxy):
    seen = []
    fake, p = await start(tmp_path, provider, proxy, over_cap, seen)
    async with p.request("GET", "/files/download") as resp:
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    await settled(seen)
    async with aiohttp.ClientSession() as s, s.get(p.admin_url + "/metrics") as m:
        text = await m.text()
    assert 'egress_streams_total{end="response_too_large",upstream="files"} 1.0' in text
    assert 'outcome="response_too_large"' in text


async def test_a_caller_that_goes_away_closes_the_provider_connection(tmp_path, provider, proxy):
    script = Script([(0.02, blob(64 * 1024))], content_type=OCTET, forever=True)
    seen = []
    fake, p = await start(tmp_path, provider, proxy, script.handler, seen)
    async with p.request("GET", "/files/download") as resp:
        assert resp.status == 200
        await resp.content.read(3 * WINDOW)
        resp.close()  # the caller hangs up mid-body
    for _ in range(100):
        if script.closed_at:
            break
        await asyncio.sleep(0.02)
    assert script.closed_at is not None and not script.finished
    ex = await settled(seen)
    assert ex.stream.end == "caller_gone" and ex.reason is None


async def test_a_started_stream_is_not_retried_and_the_breaker_counts_it_once(tmp_path, provider, proxy):
    fake, p = await start(tmp_path, provider, proxy, stalls, timeout={"idle": 0.2},
                          retry={"attempts": 3, "on_status": [502, 503, 504]},
                          breaker={"failures": 1, "reset_after": 30})
    async with p.request("GET", "/files/download") as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert fake.hits == 1  # GET is idempotent, but the stream had started
    async with p.request("GET", "/files/download") as resp:
        assert (resp.status, resp.headers.get("X-Egress-Error")) == (503, "circuit_open")


STREAMED = [
    # id, path, content type, status, body, verdict
    ("declared-binary", "/download", OCTET, 200, BODY, "valid"),
    ("declared-image-range", "/download", "image/png", 200, BODY, "valid"),
    ("declared-csv-report-mode", "/report.csv", "text/csv", 200, BODY, "valid"),
    ("operation-mode-off-json", "/off", "application/json", 200, b'{"n": "' + BODY.hex().encode() + b'"}', "unchecked"),
    ("unmatched-operation-allow", "/elsewhere", "application/json", 200, b"[" + b"1," * 100_000 + b"1]", "unmatched"),
    ("undeclared-4xx-passes-unmatched", "/doc", "text/html", 404, BODY, "unmatched"),
]


@pytest.mark.parametrize("case", STREAMED, ids=[c[0] for c in STREAMED])
async def test_unvalidated_bodies_are_streamed_with_their_verdict(case, tmp_path, provider, proxy):
    name, path, ctype, status, body, verdict = case
    seen = []
    fake, p = await start(tmp_path, provider, proxy, serve(body, [], ctype, status=status), seen)
    async with p.request("GET", "/files" + path) as resp:
        assert (resp.status, resp.headers["X-Egress-Contract"]) == (status, verdict)
        assert "Content-Length" not in resp.headers
        assert await resp.read() == body
    ex = await settled(seen)
    assert (ex.contract, ex.stream.kind, ex.stream.end) == (verdict, "passthrough", "complete")


LARGE_VALID = orjson.dumps({"n": 1, "pad": "x" * 200_000})
BUFFERED = [
    # id, path, content type, status, body, status to the caller, reason, verdict
    ("valid-json-read-whole", "/doc", "application/json", 200, LARGE_VALID, 200, None, "valid"),
    ("violating-json-refused-whole", "/doc", "application/json", 200, orjson.dumps({"n": "x" * 200_000}), 502,
     "contract_violation", "violated"),
    ("invalid-json", "/doc", "application/json", 200, b"{" * 10 + BODY, 502, "invalid_json", "violated"),
    ("undeclared-2xx-status", "/doc", OCTET, 201, BODY, 502, "contract_violation", "violated"),
    ("undeclared-content-type", "/doc", "text/csv", 200, BODY, 502, "unexpected_content_type", "violated"),
    ("undeclared-content-type-binary-route", "/download", "application/json", 200, LARGE_VALID, 502,
     "unexpected_content_type", "violated"),
]


@pytest.mark.parametrize("case", BUFFERED, ids=[c[0] for c in BUFFERED])
async def test_validated_bodies_are_still_read_whole(case, tmp_path, provider, proxy):
    name, path, ctype, status, body, answer, reason, verdict = case
    seen = []
    fake, p = await start(tmp_path, provider, proxy, serve(body, [], ctype, status=status), seen)
    async with p.request("GET", "/files" + path) as resp:
        assert (resp.status, resp.headers.get("X-Egress-Error")) == (answer, reason)
        assert resp.headers["X-Egress-Contract"] == verdict
        assert "Content-Length" in resp.headers  # one whole answer, never a stream
        if reason is None:
            assert await resp.read() == body
    ex = await settled(seen)
    assert ex.stream is None and (ex.reason, ex.contract) == (reason, verdict)


async def test_several_content_types_are_refused_whole(tmp_path, provider, proxy):
    async def handler(request):
        resp = web.Response(body=LARGE_VALID, headers={"Content-Type": "application/json"})
        resp.headers.add("Content-Type", OCTET)
        return resp
    fake, p = await start(tmp_path, provider, proxy, handler)
    async with p.request("GET", "/files/download") as resp:
        assert (resp.status, resp.headers["X-Egress-Error"]) == (502, "unexpected_content_type")


async def test_a_short_body_is_answered_whole_as_before(tmp_path, provider, proxy):
    small = blob(WINDOW - 1)
    fake, p = await start(tmp_path, provider, proxy, serve(gz(small), ["gzip"]))
    async with p.request("GET", "/files/download", headers={"Accept-Encoding": "gzip"}) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"  # within the window: forwarded as it came
        assert int(resp.headers["Content-Length"]) == len(gz(small))
        assert gzip.decompress(await resp.read()) == small


async def test_head_with_a_large_declared_length_and_304_carry_no_body(tmp_path, provider, proxy):
    async def handler(request):
        if request.method == "HEAD":
            return web.Response(headers={"Content-Type": OCTET, "Content-Length": str(50 * MiB)})
        return web.Response(status=304, headers={"ETag": '"v1"'})
    fake, p = await start(tmp_path, provider, proxy, handler, mode="off")
    async with p.request("HEAD", "/files/download") as resp:  # the length of a body a HEAD does not carry
        assert (resp.status, resp.headers.get("X-Egress-Error")) == (200, None)
        assert await resp.read() == b""
    async with p.request("GET", "/files/download", headers={"If-None-Match": '"v1"'}) as resp:
        assert (resp.status, resp.headers["ETag"]) == (304, '"v1"')
        assert await resp.read() == b""


async def test_a_declared_length_over_the_cap_is_refused_up_front(tmp_path, provider, proxy):
    async def handler(request):
        resp = web.StreamResponse(headers={"Content-Type": OCTET, "Content-Length": str(5 * MiB)})
        await resp.prepare(request)
        await resp.write(b"x" * 1000)
        return resp
    fake, p = await start(tmp_path, provider, proxy, handler, mode="off")
    async with p.request("GET", "/files/download") as resp:
        assert (resp.status, resp.headers["X-Egress-Error"]) == (502, "response_too_large")


@pytest.mark.parametrize("size", [16, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5],
                         ids=["small", "chunk-less-1", "chunk", "chunk-plus-1", "three-chunks-and-5"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_checked_answer_of_every_size_arrives_whole_and_gives_back_its_bytes(tmp_path, provider, proxy,
                                                                                     size, method):
    """respond.HeldResponse writes a body of one CHUNK or less in one call (headers with it), a larger
    one piece by piece: either way the caller gets exactly the body, with its Content-Length, and the
    in-flight budget is whole again once it is written."""
    doc = orjson.dumps({"n": 1, "pad": ""})
    body = doc[:-2] + b"x" * (size - len(doc)) + b'"}'
    assert len(body) == size

    async def handler(request):
        return web.Response(body=body, content_type="application/json")
    fake, p = await start(tmp_path, provider, proxy, handler)
    async with p.request(method, "/files/doc") as resp:
        got = await resp.read()
        assert resp.status == 200
        if method == "GET":
            assert resp.headers["X-Egress-Contract"] == "valid"
            assert got == body and resp.headers["Content-Length"] == str(size)
        else:  # no HEAD operation in the contract (unmatched: allow): forwarded, with no body
            assert resp.headers["X-Egress-Contract"] == "unmatched" and got == b""
    assert p.state.inflight.in_use == 0
    async with p.request("GET", "/files/doc") as again:  # the connection and the proxy still serve
        assert again.status == 200 and await again.read() == body
