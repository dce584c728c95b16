"""egress's own work per SSE event, in-process: the stream relay's read, framing and item check, CPU µs per event.

    .venv/bin/python bench/sse_cost.py [--events 20000] [--repeat 5]

The events are bench/streams.py's (OpenAI-style chat.completion.chunk, 177 bytes), in chunks of
10 events as its fake provider writes them; the contract is streams.py's (`item_schema` for
`text/event-stream` on POST /chat/completions), loaded by egress's contract loader.  The relay's
own loop runs them: stream_respond._pump reads each chunk through the real UpstreamStream
(send/streaming.py: the read under timeout.idle, the byte counts and caps, the decoder) from a
real aiohttp StreamReader, frames it with the real SseFramer (contracts/items.py), checks each
event as `plan_stream`'s plan says (the guarded parse with the body limits, then the compiled
item schema: stream_respond._judge), writes what may go out and yields to the loop.  What it
writes goes to a stand-in for the caller's response that counts the bytes and feeds the
provider's next chunk, so each read returns one chunk.  Rows (CPU µs per event, best of N):
  framed only (mode off)          the plan of `mode: off`: framed, forwarded unchecked
  framed + item checked (enforce) the plan of `mode: enforce`: every event parsed and validated
  ... gzip-coded stream           the same, the provider's stream gzip-coded (one sync flush per
                                  write, as a streaming gzip encoder sends it): StreamDecoder too
  floor: orjson + jsonschema-rs   orjson.loads + jsonschema-rs is_valid of each event's data
Not in them: the sockets and aiohttp's HTTP parsing and writing (bench/streams.py measures the
relay end to end).  The sample events must pass (every byte forwarded, no violation), and
`refused()` shows, outside the timing, that a violating and a non-JSON event are refused: the
stream is cut there, with the reason, and only the event before it was forwarded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import zlib
from pathlib import Path

import aiohttp
import jsonschema_rs
import orjson
import yaml
from aiohttp.base_protocol import BaseProtocol
from multidict import CIMultiDict

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import streams  # noqa: E402

from egress.config import settings_from_dict  # noqa: E402
from egress.contracts.items import framer_for, plan_stream  # noqa: E402
from egress.contracts.loader import load_contract  # noqa: E402
from egress.exchange import Exchange, StreamFacts  # noqa: E402
from egress.send.streaming import SLICE, UpstreamStream  # noqa: E402
from egress.stream_respond import _pump  # noqa: E402

PER_WRITE = 10  # events per provider write (streams.py --per-write default)
SSE = "text/event-stream"
PATH = "/chat/completions"
IDLE_S = 5.0  # timeout.idle of the bench upstream: a harness fault ends as upstream_timeout, not a hang


def _relay_parts(tmp: Path):
    """(operation, upstream) as the relay has them: streams.py's contract, default limits."""
    (tmp / "llm.yaml").write_text(yaml.safe_dump({"operations": {f"POST {PATH}": {"responses": {
        "200": {"content_type": SSE, "item_schema": streams.ITEM}}}}}))
    op = load_contract(tmp / "llm.yaml", contracts_dir=tmp).match("POST", PATH)
    assert op is not None, "the bench contract does not match POST /chat/completions"
    settings = settings_from_dict({"upstreams": [{"name": "llm", "url": "https://api.llm.example/v1",
                                                  "timeout": {"idle": IDLE_S}}]}, base_dir=tmp, environ={})
    return op, settings.upstreams[0]


class _Provider:
    """The parts of egress's UpstreamResponse the relay reads: the headers and body (a real aiohttp
    StreamReader, what the client's HTTP parser feeds from the socket) UpstreamStream reads, and
    (set once made) that UpstreamStream as `stream`."""

    def __init__(self, reader: aiohttp.StreamReader, coding: str | None) -> None:
        self.headers, self.content = CIMultiDict({"Content-Type": SSE}), reader
        if coding:
            self.headers["Content-Encoding"] = coding


class _Caller:
    """Stands in for the caller's web.StreamResponse: counts what would be written, and hands the
    provider its next chunk once the relay has written the last one (a deterministic 1:1 pace)."""

    def __init__(self, reader: aiohttp.StreamReader, rest: list[bytes]) -> None:
        self._reader, self._rest, self.written = reader, iter(rest), 0

    async def write(self, data: bytes) -> None:
        self.written += len(data)
        nxt = next(self._rest, None)
        if nxt is None:
            self._reader.feed_eof()
        else:
            self._reader.feed_data(nxt)


def gzip_chunks(chunks: list[bytes]) -> list[bytes]:
    """The chunks gzip-coded as a streaming encoder writes them: a sync flush after each, the
    trailer with the last.  Each fits in one decoder slice, so each read decodes to its events."""
    coder = zlib.compressobj(wbits=31)
    wire = [coder.compress(c) + coder.flush(zlib.Z_SYNC_FLUSH) for c in chunks]
    wire[-1] += coder.flush()
    assert max(map(len, wire)) <= SLICE, "a gzip chunk is over one decoder slice"
    return wire


async def _relay_chunks(chunks: list[bytes], op, up, mode: str, coding: str | None = None) -> tuple[Exchange, float]:
    """One stream through stream_respond._pump, chunk by chunk: (the exchange, CPU seconds)."""
    plan = plan_stream(op, mode, 200, SSE, has_contract=True)
    ex = Exchange("POST")
    facts = ex.stream = StreamFacts(plan.kind)
    ex.contract = plan.outcome
    reader = aiohttp.StreamReader(BaseProtocol(asyncio.get_running_loop()), 1 << 16)
    provider = _Provider(reader, coding)
    provider.stream = UpstreamStream(provider, up, first_byte_by=time.monotonic() + IDLE_S)
    caller = _Caller(reader, chunks[1:])
    reader.feed_data(chunks[0])
    t0 = time.process_time()
    cut = await _pump(caller, provider, op, up, ex, plan, enforce=mode == "enforce" and plan.checked,
                      checked=plan.checked)
    cpu = time.process_time() - t0
    facts.end = cut.reason if cut is not None else "complete"
    assert facts.bytes == caller.written, (facts.bytes, caller.written)
    return ex, cpu


def rows(events: int, repeat: int) -> dict[str, float]:
    """CPU µs per event, best of `repeat` streams of `events` events (at least PER_WRITE)."""
    k = max(events // PER_WRITE, 1)
    chunks = [b"".join(streams.event(i * PER_WRITE + j) for j in range(PER_WRITE)) for i in range(k)]
    total = k * PER_WRITE
    out = asyncio.run(_relay_rows(chunks, total, repeat))
    datas = [item.data for chunk in chunks for item in framer_for("sse", 1 << 20).feed(chunk)]
    validator = jsonschema_rs.validator_for(streams.ITEM)
    floor = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        passed = sum(validator.is_valid(orjson.loads(d)) for d in datas)
        floor = min(floor, (time.process_time() - t0) / total * 1e6)
        assert passed == total, f"{total - passed} bench events fail the item schema"
    return {**out, "floor: orjson + jsonschema-rs": floor}


async def _relay_rows(chunks: list[bytes], total: int, repeat: int) -> dict[str, float]:
    out: dict[str, float] = {}
    size, coded = sum(map(len, chunks)), gzip_chunks(chunks)
    cases = (("framed only (mode off)", chunks, "off", None, "unchecked"),
             ("framed + item checked (enforce)", chunks, "enforce", None, "valid"),
             ("framed + item checked (enforce), gzip-coded stream", coded, "enforce", "gzip", "valid"))
    with tempfile.TemporaryDirectory() as tmp:
        op, up = _relay_parts(Path(tmp))
        for _ in range(repeat):
            for name, wire, mode, coding, contract in cases:
                ex, cpu = await _relay_chunks(wire, op, up, mode, coding)
                facts = ex.stream
                assert (facts.end, facts.items, facts.bytes, facts.violations, ex.contract) == (
                    "complete", total, size, 0, contract), (name, facts, ex.contract)
                out[name] = min(out.get(name, float("inf")), cpu / total * 1e6)
    return out


#: events the enforce plan must refuse: (name, SSE event bytes, the reason that cuts the stream)
REFUSED = (
    ("object is not a chunk", b'data: {"id":"c","object":"chat.completion","choices":[]}\n\n', "contract_violation"),
    ("data is not JSON", b"data: {not json\n\n", "invalid_json"),
)


CODINGS = (None, "gzip")


def refused() -> dict[tuple[str, str | None], tuple[str, int, int]]:
    """Each REFUSED event between two good ones, in one chunk (identity and gzip-coded), through
    the enforce plan: (name, coding) -> (the reason that cut the stream, events and bytes forwarded)."""
    return asyncio.run(_refused())


async def _refused() -> dict[tuple[str, str | None], tuple[str, int, int]]:
    good = streams.event(0)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        op, up = _relay_parts(Path(tmp))
        for name, bad, _ in REFUSED:
            for coding in CODINGS:
                chunk = [good + bad + good]
                ex, _ = await _relay_chunks(gzip_chunks(chunk) if coding else chunk, op, up, "enforce", coding)
                result[name, coding] = (ex.stream.end, ex.stream.items, ex.stream.bytes)
    return result


def check_refused() -> dict[str, str]:
    """refused(), asserted: the stream is cut at the bad event with its reason, only the first good
    event forwarded.  name -> reason."""
    got = refused()
    want = {(name, coding): (reason, 1, len(streams.event(0))) for name, _, reason in REFUSED for coding in CODINGS}
    assert got == want, f"violating SSE events were not refused as expected: {got} != {want}"
    return {name: reason for name, _, reason in REFUSED}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    print(json.dumps({"cpu_us_per_event": rows(args.events, args.repeat), "refused": check_refused(),
                      "event_bytes": len(streams.event(1))}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
