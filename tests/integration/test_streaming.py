"""Streams through the real proxy: SSE / NDJSON event by event, item contracts, time and size bounds,
callers that go away, the breaker and retries.  A fake provider writes events over time on real sockets."""

import asyncio
import time

import orjson
import pytest
import yaml

from tests.conftest import base_config
from tests.stream_fakes import Script, chunk, sse

MARKER = "secret-MARKER-7781"
CHUNK_SCHEMA = {"type": "object", "required": ["id", "object", "choices"],
                "properties": {"id": {"type": "string"}, "object": {"const": "chat.completion.chunk"},
                               "choices": {"type": "array"}}}
LINE_SCHEMA = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}


def write_contract(tmp_path):
    ops = {
        "POST /chat/completions": {"responses": {"200": {"content_type": "text/event-stream",
                                                         "item_schema": CHUNK_SCHEMA}}},
        "GET /lines": {"responses": {"200": {"content_type": ["application/x-ndjson", "application/json-seq"],
                                             "item_schema": LINE_SCHEMA}}},
        "GET /plain": {"responses": {"200": {"content_type": "application/json", "schema": {"type": "object"}}}},
    }
    (tmp_path / "ai.yaml").write_text(yaml.safe_dump({"operations": ops}))


async def start(tmp_path, provider, proxy, script: Script, observers=None, **over):
    fake = await provider(script.handler)
    write_contract(tmp_path)
    upstream = {"name": "ai", "url": fake.url + "/v1", "callers": ["*"], "allow_private_addresses": True,
                "contract": "ai.yaml", "retry": {"attempts": 1}, **over}
    p = await proxy(base_config([upstream], contracts_dir=str(tmp_path)), base_dir=tmp_path, observers=observers)
    return fake, p


async def read_all(resp, on_chunk=None) -> bytes:
    out = []
    async for data in resp.content.iter_any():
        out.append(data)
        if on_chunk:
            on_chunk(data)
    return b"".join(out)


def last_sse_error(raw: bytes) -> dict:
    tail = raw.rsplit(b"event: error\n", 1)[1]
    assert tail.startswith(b"data: ") and tail.endswith(b"\n\n")
    return orjson.loads(tail[6:-2])


async def test_events_arrive_as_sent_chunked_and_byte_exact(tmp_path, provider, proxy):
    body = [sse(chunk(i)) for i in range(5)]
    script = Script([(0.2, b) for b in body] + [(0.0, b"data: [DONE]\n\n")])
    seen = []
    fake, p = await start(tmp_path, provider, proxy, script, observers=[seen.append])
    arrivals = []
    async with p.request("POST", "/ai/chat/completions", json={"stream": True}) as resp:
        assert resp.status == 200
        assert "Content-Length" not in resp.headers
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.headers["X-Egress-Contract"] == "valid"
        raw = await read_all(resp, lambda d: arrivals.append(time.monotonic()))
    assert raw == b"".join(body) + b"data: [DONE]\n\n"
    # the first event reached the caller right after the provider sent it, not at the end
    assert arrivals[0] - script.sent_at[0] < 0.1
    assert arrivals[0] < script.sent_at[-1] - 0.5
    await asyncio.sleep(0.05)
    ex = seen[-1]
    assert (ex.stream.end, ex.stream.items, ex.reason, ex.contract) == ("complete", 6, None, "valid")
    assert ex.stream.first_byte_s is not None


FRAMING = [
    ("crlf-comments-fields", b': hello\r\n\r\nid: 1\r\nevent: delta\r\nretry: 500\r\ndata: '
     + orjson.dumps(chunk(1)) + b'\r\n\r\n'),
    ("bom-and-multiline-data", b'\xef\xbb\xbfdata: {"id": "c", "object": "chat.completion.chunk",\n'
     b'data:  "choices": []}\n\n'),
    ("cr-line-ends", b'data: ' + orjson.dumps(chunk(2)) + b'\r\r: tail\r\r'),
]


@pytest.mark.parametrize("stream", [c[1] for c in FRAMING], ids=[c[0] for c in FRAMING])
async def test_provider_framing_is_kept_byte_for_byte(stream, tmp_path, provider, proxy):
    steps = [(0.01, stream[i:i + 5]) for i in range(0, len(stream), 5)]  # split across TCP chunks
    fake, p = await start(tmp_path, provider, proxy, Script(steps))
    async with p.request("POST", "/ai/chat/completions") as resp:
        raw = await read_all(resp)
    assert raw == stream


def violating_script(content_type="text/event-stream"):
    if content_type == "text/event-stream":
        good, bad = sse(chunk(1)), sse({"id": "x", "object": MARKER, "choices": []})
    else:
        good, bad = b'{"n": 1}\n', orjson.dumps({"n": MARKER}) + b"\n"
    return Script([(0.05, good), (0.05, bad), (0.05, good)], content_type=content_type, forever=True)


async def test_enforce_a_violating_event_is_never_forwarded(tmp_path, provider, proxy):
    script = violating_script()
    seen = []
    fake, p = await start(tmp_path, provider, proxy, script, observers=[seen.append])
    async with p.request("POST", "/ai/chat/completions") as resp:
        assert resp.status == 200
        raw = await read_all(resp)
    assert MARKER.encode() not in raw
    assert raw.startswith(sse(chunk(1)))
    problem = last_sse_error(raw)
    assert problem["reason"] == "contract_violation" and problem["upstream"] == "ai"
    assert problem["error"] == {"message": "contract_violation: " + problem["detail"], "type": "egress_error",
                                "code": "contract_violation"}
    assert problem["violations"][0]["instance_path"] == "/object" and problem["item"] == 1
    assert problem["trace_id"]
    for _ in range(50):  # the provider connection is closed: its next write fails
        if script.closed_at:
            break
        await asyncio.sleep(0.02)
    assert script.closed_at is not None
    ex = seen[-1]
    assert (ex.stream.end, ex.reason, ex.contract) == ("contract_violation", "contract_violation", "violated")
    events = [e for e in ex.events if e.name == "egress.contract_violation"]
    assert events[0].attrs["item"] == 1 and MARKER not in repr(ex.events)


@pytest.mark.parametrize("ctype,path", [("application/x-ndjson", "/ai/lines"), ("application/json-seq", "/ai/lines")],
                         ids=["ndjson", "json-seq"])
async def test_enforce_line_streams_end_with_a_problem_line(ctype, path, tmp_path, provider, proxy):
    script = violating_script(ctype)
    if ctype == "application/json-seq":
        script.steps = [(d, b"\x1e" + b) for d, b in script.steps]
    fake, p = await start(tmp_path, provider, proxy, script)
    async with p.request("GET", path) as resp:
        raw = await read_all(resp)
    assert MARKER.encode() not in raw
    last = orjson.loads(raw.rstrip(b"\n").rsplit(b"\n", 1)[-1].lstrip(b"\x1e"))
    assert last["reason"] == "contract_violation" and last["error"]["code"] == "contract_violation"


async def test_report_mode_forwards_everything_and_records_each_violation(tmp_path, provider, proxy):
    script = Script([(0.02, sse(chunk(1))), (0.02, sse({"id": 5, "object": MARKER})), (0.02, sse(chunk(2)))])
    seen = []
    fake, p = await start(tmp_path, provider, proxy, script, observers=[seen.append], mode="report")
    async with p.request("POST", "/ai/chat/completions") as resp:
        raw = await read_all(resp)
    assert raw == b"".join(b for _, b in script.steps)
    await asyncio.sleep(0.05)
    ex = seen[-1]
    assert (ex.stream.end, ex.stream.violations, ex.contract, ex.reason) == ("complete", 1, "violated", None)
    keywords = sorted(e.attrs["keyword"] for e in ex.events if e.name == "egress.contract_violation")
    assert keywords == ["const", "required", "type"] and all(e.attrs.get("item") == 1 for e in ex.events
                                                 if e.name == "egress.contract_violation")
    assert MARKER not in repr(ex.events)


# id, script, upstream overrides, reason, bound
HOSTILE = [
    ("never-ends-idle", Script([(0, sse(chunk(1))), (5.0, b"")], forever=True), {"timeout": {"idle": 0.3}},
     "upstream_timeout", "idle"),
    ("trickle-one-byte-over-stream", Script([(0.05, b":")], forever=True),
     {"timeout": {"idle": 1, "stream": 0.6}}, "upstream_timeout", "stream"),
    ("headers-then-silence-first-byte", Script([(5.0, b"")]), {"timeout": {"connect": 0.2, "total": 0.4, "idle": 30}},
     "upstream_timeout", "first_byte"),
    ("giant-event", Script([(0, b"data: "), (0, b"x" * 65536)], forever=True), {},
     "response_too_large", None),
    ("whole-stream-over-max-response", Script([(0, sse(chunk(1)))], forever=True),
     {"limits": {"max_response_bytes": 200_000}}, "response_too_large", None),
]


@pytest.mark.parametrize("script,over,reason,bound", [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
async def test_hostile_providers_end_with_an_error_event(script, over, reason, bound, tmp_path, provider, proxy):
    seen = []
    fake, p = await start(tmp_path, provider, proxy, script, observers=[seen.append], **over)
    started = time.monotonic()
    async with p.request("POST", "/ai/chat/completions") as resp:
        assert resp.status == 200
        raw = await read_all(resp)
    assert time.monotonic() - started < 5
    problem = last_sse_error(raw)
    assert problem["reason"] == reason and problem["error"]["code"] == reason
    if bound:
        assert problem["bound"] == bound
    await asyncio.sleep(0.1)
    assert seen[-1].stream.end == reason and seen[-1].reason == reason
    if script.forever:
        assert script.closed_at is not None  # egress closed the provider connection
    if reason == "response_too_large":
        assert script.bytes_sent < 64 << 20  # stopped near the cap, not at 2 GB


async def test_long_stream_outlives_timeout_total(tmp_path, provider, proxy):
    # the 10-minute / 1 s gap case, scaled down: 12 gaps of 0.1 s under total: 0.4
    script = Script([(0.1, sse(chunk(i))) for i in range(12)])
    fake, p = await start(tmp_path, provider, proxy, script, timeout={"connect": 0.2, "total": 0.4, "idle": 1})
    async with p.request("POST", "/ai/chat/completions") as resp:
        raw = await read_all(resp)
    assert raw == b"".join(b for _, b in script.steps) and script.finished


@pytest.mark.parametrize("script", [
    Script([(0.05, sse(chunk(1)))], forever=True),
    Script([(0.0, sse(chunk(1))), (30.0, sse(chunk(2)))]),
], ids=["provider-sending", "provider-silent"])
async def test_caller_gone_closes_the_provider_connection(script, tmp_path, provider, proxy):
    seen = []
    fake, p = await start(tmp_path, provider, proxy, script, observers=[seen.append])
    resp = await p.request("POST", "/ai/chat/completions")
    first = await resp.content.readany()
    assert first.startswith(b"data: ")
    gone = time.monotonic()
    resp.close()  # the caller goes away mid-stream
    for _ in range(100):
        if script.closed_at:
            break
        await asyncio.sleep(0.02)
    assert script.closed_at is not None and script.closed_at - gone < 1.0  # at once, not at timeout.idle
    await asyncio.sleep(0.05)
    assert seen and seen[-1].stream.end == "caller_gone"


async def test_compressed_stream_is_decoded_and_capped(tmp_path, provider, proxy):
    script = Script([(0.02, sse(chunk(i))) for i in range(3)], gzip=True)
    fake, p = await start(tmp_path, provider, proxy, script)
    async with p.request("POST", "/ai/chat/completions", headers={"Accept-Encoding": "gzip"}) as resp:
        assert "Content-Encoding" not in resp.headers
        raw = await read_all(resp)
    assert raw == b"".join(sse(chunk(i)) for i in range(3))


async def test_started_stream_is_not_retried_and_breaker_counts_it_once_at_the_end(tmp_path, provider, proxy):
    script = Script([(0, sse(chunk(1))), (5.0, b"")])
    fake, p = await start(tmp_path, provider, proxy, script, timeout={"idle": 0.2},
                          retry={"attempts": 3, "on_status": [502, 503, 504]},
                          breaker={"failures": 1, "reset_after": 30})
    async with p.request("POST", "/ai/chat/completions", headers={"Idempotency-Key": "k1"}) as resp:
        assert resp.status == 200
        assert last_sse_error(await read_all(resp))["reason"] == "upstream_timeout"
    assert fake.hits == 1
    async with p.request("POST", "/ai/chat/completions") as resp:
        assert (resp.status, resp.headers.get("X-Egress-Error")) == (503, "circuit_open")


async def test_undeclared_content_type_is_refused_before_streaming(tmp_path, provider, proxy):
    script = Script([(0, sse(chunk(1)))])
    fake, p = await start(tmp_path, provider, proxy, script)
    async with p.request("GET", "/ai/plain") as resp:
        assert (resp.status, resp.headers.get("X-Egress-Error")) == (502, "unexpected_content_type")


async def test_stream_without_contract_is_streamed_unchecked(tmp_path, provider, proxy):
    script = Script([(0.02, b'{"n": "x"}\n'), (0.02, b"not json\n")], content_type="application/x-ndjson")
    fake, p = await start(tmp_path, provider, proxy, script, unmatched="allow")
    async with p.request("GET", "/ai/other") as resp:
        assert resp.headers["X-Egress-Contract"] == "unmatched"
        assert await read_all(resp) == b'{"n": "x"}\nnot json\n'
