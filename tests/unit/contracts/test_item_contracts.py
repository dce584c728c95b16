"""Item contracts load: compact `item_schema`, OpenAPI 3.2 `itemSchema`, 3.0/3.1 `schema` of a stream."""

import pytest

from egress.contracts.items import check_item, framer_for, plan_stream
from egress.errors import ConfigError

from .helpers import contract

ITEM = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}


def items(kind, raw):
    f = framer_for(kind, 1 << 20)
    return f.feed(raw) + f.finish()


def verdicts(c, ctype, raw, kind="sse"):
    op = c.match("GET", "/s")
    plan = plan_stream(op, "enforce", 200, ctype, has_contract=True)
    assert plan.checked
    return [check_item(i, plan.schema).reason for i in items(kind, raw)]


def compact_stream(body):
    return {"operations": {"GET /s": {"responses": {"200": body}}}}


def test_compact_item_schema(tmp_path):
    c = contract(tmp_path, compact_stream({"content_type": "text/event-stream", "item_schema": ITEM}))
    assert verdicts(c, "text/event-stream", b'data: {"n": 1}\n\ndata: {"n": "x"}\n\n') == [None, "contract_violation"]


def test_compact_item_schema_by_ref(tmp_path):
    doc = compact_stream({"content_type": ["application/x-ndjson", "application/jsonl"],
                          "item_schema": {"$ref": "schemas/item.json"}})
    c = contract(tmp_path, doc, {"schemas/item.json": ITEM})
    assert verdicts(c, "application/jsonl", b'{"n": 1}\n[]\n', kind="ndjson") == [None, "contract_violation"]


PROBLEMS = [
    ("schema-and-item-schema", {"content_type": "text/event-stream", "schema": ITEM, "item_schema": ITEM},
     "give either schema"),
    ("item-schema-on-json", {"content_type": "application/json", "item_schema": ITEM}, "needs sequential"),
    ("item-schema-not-a-schema", {"content_type": "text/event-stream", "item_schema": "x"}, "must be a mapping"),
]


@pytest.mark.parametrize("body,fragment", [c[1:] for c in PROBLEMS], ids=[c[0] for c in PROBLEMS])
def test_compact_item_schema_problems_name_the_key(tmp_path, body, fragment):
    with pytest.raises(ConfigError) as err:
        contract(tmp_path, compact_stream(body))
    assert any("/responses/200/item_schema" in p and fragment in p for p in err.value.problems), err.value.problems


def openapi(version, media):
    return {"openapi": version, "info": {"title": "t", "version": "1"}, "paths": {"/s": {"get": {
        "responses": {"200": {"description": "ok", "content": {"text/event-stream": media}}}}}}}


@pytest.mark.parametrize("version,media", [
    ("3.2.0", {"itemSchema": ITEM}),
    ("3.2.0", {"itemSchema": ITEM, "schema": {"type": "string"}}),
    ("3.1.0", {"schema": ITEM}),
    ("3.0.3", {"schema": {**ITEM, "properties": {"n": {"type": "integer", "nullable": True}}}}),
], ids=["3.2-itemSchema", "3.2-itemSchema-over-schema", "3.1-schema-per-event", "3.0-schema-per-event"])
def test_openapi_stream_item_schemas(tmp_path, version, media):
    c = contract(tmp_path, openapi(version, media), name="c.json")
    assert verdicts(c, "text/event-stream", b'data: {"n": 1}\n\n: ping\n\ndata: {"n": "x"}\n\ndata: [DONE]\n\n') \
        == [None, None, "contract_violation", None]


CLI_CASES = [
    ("valid-sse", "s.sse", b'data: {"n": 1}\n\ndata: [DONE]\n\n', 0, "valid (2 items, 0 in breach)"),
    ("violating-sse", "s.sse", b'data: {"n": 1}\n\ndata: {"n": "x"}\n\n', 1, "item 1: contract_violation"),
    ("not-json-ndjson", "s.ndjson", b'{"n": 1}\nnope\n', 1, "item 1: invalid_json"),
]


@pytest.mark.parametrize("name,raw,code,line", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_contracts_check_frames_a_saved_stream(tmp_path, name, raw, code, line):
    from egress.contracts.check import check_file
    c = contract(tmp_path, compact_stream({"content_type": ["text/event-stream", "application/x-ndjson"],
                                           "item_schema": ITEM}))
    (tmp_path / name).write_bytes(raw)
    got, lines = check_file(c, "GET", "/s", 200, tmp_path / name)
    assert got == code and any(line in text for text in lines), lines
