"""egress's own work per SSE event, in-process: the stream relay's framing and item check, CPU µs per event.

    .venv/bin/python bench/sse_cost.py [--events 20000] [--repeat 5]

The events are bench/streams.py's (OpenAI-style chat.completion.chunk, 177 bytes), in chunks of
10 events as its fake provider writes them; the contract is streams.py's (`item_schema` for
`text/event-stream` on POST /chat/completions), loaded by egress's contract loader.  Per chunk,
what the relay (stream_respond._pump) does between reading a chunk and writing it: the real
SseFramer (contracts/items.py) frames it, and stream_respond._judge, the relay's own per-chunk
judge, checks each item against the plan `plan_stream` makes (parse with the body limits, then
the compiled item schema) and joins the bytes that may go out.  Rows:
  framed only (mode off)          the plan of `mode: off`: framed, forwarded unchecked
  framed + item checked (enforce) the plan of `mode: enforce`: every event parsed and validated
  floor: orjson + jsonschema-rs   orjson.loads + jsonschema-rs is_valid of each event's data
Not in them: the socket read and write and the loop's yield per chunk (streams.py measures the
relay end to end).  The sample events must pass (every byte forwarded, no violation), and
`refused()` shows, outside the timing, that a violating and a non-JSON event are refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jsonschema_rs
import orjson
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import streams  # noqa: E402

from egress.config import settings_from_dict  # noqa: E402
from egress.contracts.items import framer_for, plan_stream  # noqa: E402
from egress.contracts.loader import load_contract  # noqa: E402
from egress.exchange import Exchange, StreamFacts  # noqa: E402
from egress.stream_respond import _judge  # noqa: E402

PER_WRITE = 10  # events per provider write (streams.py --per-write default)
SSE = "text/event-stream"
PATH = "/chat/completions"


def _relay_parts(tmp: Path):
    """(operation, limits) as the relay has them: streams.py's contract, default limits."""
    (tmp / "llm.yaml").write_text(yaml.safe_dump({"operations": {f"POST {PATH}": {"responses": {
        "200": {"content_type": SSE, "item_schema": streams.ITEM}}}}}))
    op = load_contract(tmp / "llm.yaml", contracts_dir=tmp).match("POST", PATH)
    assert op is not None, "the bench contract does not match POST /chat/completions"
    settings = settings_from_dict({"upstreams": [{"name": "llm", "url": "https://api.llm.example/v1"}]},
                                  base_dir=tmp, environ={})
    return op, settings.upstreams[0].limits


def _relay_chunks(chunks: list[bytes], op, limits, mode: str) -> Exchange:
    """One stream through the framer and the judge, chunk by chunk, as _pump does it."""
    plan = plan_stream(op, mode, 200, SSE, has_contract=True)
    ex = Exchange("POST")
    facts = ex.stream = StreamFacts(plan.kind)
    ex.contract = plan.outcome
    framer = framer_for(plan.kind, limits.max_event_bytes)
    enforce = mode == "enforce" and plan.checked
    for chunk in chunks:
        out, cut = _judge(framer.feed(chunk), op, plan, limits, ex, enforce=enforce, checked=plan.checked)
        facts.bytes += len(out)
        if cut is not None:
            facts.end = cut.reason
            return ex
    out, cut = _judge(framer.finish(), op, plan, limits, ex, enforce=enforce, checked=plan.checked)
    facts.bytes += len(out)
    facts.end = cut.reason if cut is not None else "complete"
    return ex


def rows(events: int, repeat: int) -> dict[str, float]:
    """CPU µs per event, best of `repeat` streams of `events` events (at least PER_WRITE)."""
    k = max(events // PER_WRITE, 1)
    chunks = [b"".join(streams.event(i * PER_WRITE + j) for j in range(PER_WRITE)) for i in range(k)]
    total, size = k * PER_WRITE, sum(map(len, chunks))
    datas = [item.data for chunk in chunks for item in framer_for("sse", 1 << 20).feed(chunk)]
    validator = jsonschema_rs.validator_for(streams.ITEM)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        op, limits = _relay_parts(Path(tmp))
        for _ in range(repeat):
            for name, mode, checked in (("framed only (mode off)", "off", "unchecked"),
                                        ("framed + item checked (enforce)", "enforce", "valid")):
                t0 = time.process_time()
                ex = _relay_chunks(chunks, op, limits, mode)
                us = (time.process_time() - t0) / total * 1e6
                facts = ex.stream
                assert (facts.end, facts.items, facts.bytes, facts.violations, ex.contract) == (
                    "complete", total, size, 0, checked), (name, facts, ex.contract)
                out[name] = min(out.get(name, float("inf")), us)
            t0 = time.process_time()
            passed = sum(validator.is_valid(orjson.loads(d)) for d in datas)
            us = (time.process_time() - t0) / total * 1e6
            assert passed == total, f"{total - passed} bench events fail the item schema"
            out["floor: orjson + jsonschema-rs"] = min(out.get("floor: orjson + jsonschema-rs", float("inf")), us)
    return out


#: events the enforce plan must refuse: (name, SSE event bytes, the reason that cuts the stream)
REFUSED = (
    ("object is not a chunk", b'data: {"id":"c","object":"chat.completion","choices":[]}\n\n', "contract_violation"),
    ("data is not JSON", b"data: {not json\n\n", "invalid_json"),
)


def refused() -> dict[str, tuple[str, int, int]]:
    """Each REFUSED event between two good ones, in one chunk, through the enforce plan:
    name -> (the reason that cut the stream, events forwarded, bytes forwarded)."""
    good = streams.event(0)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        op, limits = _relay_parts(Path(tmp))
        for name, bad, _ in REFUSED:
            facts = _relay_chunks([good + bad + good], op, limits, "enforce").stream
            result[name] = (facts.end, facts.items, facts.bytes)
    return result


def check_refused() -> dict[str, str]:
    """refused(), asserted: the stream is cut at the bad event with its reason, only the first good
    event forwarded.  name -> reason."""
    got = refused()
    want = {name: (reason, 1, len(streams.event(0))) for name, _, reason in REFUSED}
    assert got == want, f"violating SSE events were not refused as expected: {got} != {want}"
    return {name: r[0] for name, r in got.items()}


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
