"""Framing the items of a stream (SSE, NDJSON, json-seq) byte for byte, and checking each item."""

import orjson
import pytest

from egress.contracts.compiler import compile_schema
from egress.contracts.items import ItemTooLarge, check_item, framer_for, plan_stream, stream_kind, streamed

CHUNK = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}

# id, kind, stream bytes, expected data of each item (None: passes unchecked)
FRAMING = [
    ("sse-lf", "sse", b'data: {"id":"a"}\n\ndata: {"id":"b"}\n\n', [b'{"id":"a"}', b'{"id":"b"}']),
    ("sse-crlf", "sse", b'data: {"id":"a"}\r\n\r\ndata: {"id":"b"}\r\n\r\n', [b'{"id":"a"}', b'{"id":"b"}']),
    ("sse-cr", "sse", b'data: {"id":"a"}\r\rdata: 1\r\r', [b'{"id":"a"}', b"1"]),
    ("sse-multiline-data", "sse", b'data: {"id":\ndata: "a"}\n\n', [b'{"id":\n"a"}']),
    ("sse-no-space", "sse", b'data:{"id":"a"}\n\n', [b'{"id":"a"}']),
    ("sse-bom", "sse", b'\xef\xbb\xbfdata: {"id":"a"}\n\n', [b'{"id":"a"}']),
    ("sse-fields-comments", "sse", b': keepalive\n\nid: 7\nevent: delta\nretry: 100\ndata: 2\n\n',
     [None, b"2"]),
    ("sse-event-without-data", "sse", b"event: ping\nid: 3\n\n", [None]),
    ("sse-done", "sse", b'data: {"id":"a"}\n\ndata: [DONE]\n\n', [b'{"id":"a"}', None]),
    ("sse-unfinished-tail-checked", "sse", b'data: {"id":"a"}\n\ndata: 5', [b'{"id":"a"}', b"5"]),
    ("sse-data-field-only", "sse", b"data\n\n", [b""]),
    ("ndjson", "ndjson", b'{"id":"a"}\n{"id":"b"}\r\n\n{"id":"c"}', [b'{"id":"a"}', b'{"id":"b"}', b'{"id":"c"}']),
    ("json-seq", "json-seq", b'\x1e{"id":"a"}\n\x1e{"id":\n"b"}\n', [b'{"id":"a"}', b'{"id":\n"b"}']),
]


def frame(kind, chunks, max_item=1 << 20):
    framer = framer_for(kind, max_item)
    items = []
    for c in chunks:
        items.extend(framer.feed(c))
    return items + framer.finish()


def expected_data(items):
    # a CRLF split between its CR and LF leaves the LF as a filler item of its own (forwarded, unchecked)
    return [i.data for i in items if i.raw.strip(b"\r\n") or i.data is not None]


@pytest.mark.parametrize("kind,stream,data", [c[1:] for c in FRAMING], ids=[c[0] for c in FRAMING])
def test_framing_whole_and_split_at_every_offset(kind, stream, data):
    items = frame(kind, [stream])
    assert expected_data(items) == data
    assert b"".join(i.raw for i in items) == stream  # byte for byte
    for cut in range(1, len(stream)):
        split = frame(kind, [stream[:cut], stream[cut:]])
        assert expected_data(split) == data, f"split at {cut}"
        assert b"".join(i.raw for i in split) == stream, f"split at {cut}"


@pytest.mark.parametrize("kind,stream,data", [c[1:] for c in FRAMING], ids=[c[0] for c in FRAMING])
def test_framing_one_byte_at_a_time(kind, stream, data):
    items = frame(kind, [stream[i:i + 1] for i in range(len(stream))])
    assert expected_data(items) == data
    assert b"".join(i.raw for i in items) == stream


def test_sse_event_is_complete_at_its_blank_line_not_later():
    framer = framer_for("sse", 1 << 20)
    assert [i.data for i in framer.feed(b'data: {"id":"a"}\n\n')] == [b'{"id":"a"}']
    assert framer.feed(b"data: {") == []


@pytest.mark.parametrize("kind,stream", [
    ("sse", b"data: " + b"x" * 200),
    ("ndjson", b"[" + b"1," * 200),
    ("json-seq", b"\x1e" + b"[" * 200),
], ids=["sse", "ndjson", "json-seq"])
def test_item_over_the_cap_raises_before_its_end(kind, stream):
    framer = framer_for(kind, 100)
    with pytest.raises(ItemTooLarge):
        for i in range(0, len(stream), 7):
            framer.feed(stream[i:i + 7])


def test_many_small_items_in_one_chunk_keep_memory_to_the_partial_item():
    framer = framer_for("sse", 64)
    chunk = b'data: {"id":"a"}\n\n' * 1000 + b"data: {"
    assert len(framer.feed(chunk)) == 1000
    assert len(framer._buf) == len(b"data: {")


@pytest.fixture(scope="module")
def schema():
    return compile_schema({"mem://item": CHUNK}, "mem://item")


def item_of(data):
    return frame("ndjson", [data + b"\n"])[0]


CHECKS = [
    ("valid", b'{"id":"a"}', "valid", None),
    ("schema-violation", b'{"id":5}', "violated", "contract_violation"),
    ("not-json", b"hello", "violated", "invalid_json"),
    ("duplicate-keys", b'{"id":"a","id":"b"}', "violated", "invalid_json"),
    ("too-deep", b"[" * 80 + b"]" * 80, "violated", "invalid_json"),
    ("nan", b'{"id":NaN}', "violated", "invalid_json"),
]


@pytest.mark.parametrize("data,outcome,reason", [c[1:] for c in CHECKS], ids=[c[0] for c in CHECKS])
def test_check_item(schema, data, outcome, reason):
    result = check_item(item_of(data), schema, max_depth=64)
    assert (result.outcome, result.reason) == (outcome, reason)
    for v in result.violations:
        assert "5" not in v.message  # no value of the item in what is recorded


def test_sse_done_and_eventless_pass_unchecked(schema):
    for item in frame("sse", [b"data: [DONE]\n\n: c\n\nevent: x\n\n"]):
        assert check_item(item, schema).outcome == "valid"


@pytest.mark.parametrize("ctype,kind", [
    ("text/event-stream", "sse"), ("text/event-stream; charset=utf-8", "sse"),
    ("application/x-ndjson", "ndjson"), ("application/jsonl", "ndjson"), ("application/json-seq", "json-seq"),
    ("application/json", None), (None, None),
], ids=["sse", "sse-params", "ndjson", "jsonl", "json-seq", "json", "none"])
def test_stream_kind(ctype, kind):
    assert stream_kind(ctype) == kind


@pytest.mark.parametrize("status,streams", [
    (199, False), (200, True), (201, True), (203, True), (204, False), (205, False), (206, True),
    (299, True), (300, False), (304, False), (400, False), (500, False),
])
def test_streamed_is_a_2xx_with_a_body_and_a_sequential_media_type(status, streams):
    for media in ("text/event-stream", "application/x-ndjson", "application/jsonl",
                  "application/x-jsonlines", "application/json-seq"):
        assert streamed(status, media) is streams
    for media in ("application/json", "text/plain", "text/event-stream; charset=utf-8", "", None):
        assert streamed(status, media) is False  # a parsed media type is asked for: no parameters


def test_plan_without_operation():
    assert plan_stream(None, "enforce", 200, "text/event-stream", has_contract=True).outcome == "unmatched"
    assert plan_stream(None, "enforce", 200, "text/event-stream", has_contract=False).outcome == "unchecked"
    assert plan_stream(None, "enforce", 200, "application/json", has_contract=True) is None


def test_json_seq_record_waits_for_whole_json():
    framer = framer_for("json-seq", 1 << 20)
    assert framer.feed(b'\x1e{"id":\n') == []
    assert [i.data for i in framer.feed(b'"a"}\n')] == [b'{"id":\n"a"}']
    assert orjson.loads(b'{"id":\n"a"}') == {"id": "a"}
