"""OpenAI's published document, read as the streaming convention says: a `text/event-stream` media type's
`schema` is the schema of each event's JSON data.  Checked against its streaming operations."""

import orjson
import pytest

from egress.contracts.items import check_item, framer_for, plan_stream

from .suite import OPENAPI
from .test_vendor_openapi import _load

pytestmark = pytest.mark.skipif(not OPENAPI.is_dir(), reason="shared/conformance not beside the repo")

CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]}

STREAMING = ["POST /chat/completions", "POST /responses", "POST /audio/speech", "POST /audio/transcriptions",
             "POST /images/generations", "POST /images/edits"]


@pytest.fixture(scope="module")
def openai_contract():
    return _load("openai.openapi.yaml")[0]


@pytest.mark.parametrize("template", STREAMING)
def test_every_streaming_operation_has_an_item_schema(openai_contract, template):
    method, path = template.split(" ", 1)
    op = openai_contract.match(method, path)
    assert op is not None and op.template == template
    plan = plan_stream(op, "enforce", 200, "text/event-stream", has_contract=True)
    assert plan.checked and plan.schema is not None


CASES = [
    ("valid-chunk", CHUNK, "valid", None),
    ("wrong-object", {**CHUNK, "object": "chat.completion"}, "violated", "contract_violation"),
    ("missing-choices", {k: v for k, v in CHUNK.items() if k != "choices"}, "violated", "contract_violation"),
]


@pytest.mark.parametrize("event,outcome,reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_chat_completion_chunks_are_checked_one_by_one(openai_contract, event, outcome, reason):
    op = openai_contract.match("POST", "/chat/completions")
    plan = plan_stream(op, "enforce", 200, "text/event-stream; charset=utf-8", has_contract=True)
    framer = framer_for(plan.kind, 1 << 20)
    items = framer.feed(b"data: " + orjson.dumps(event) + b"\n\ndata: [DONE]\n\n") + framer.finish()
    results = [check_item(i, plan.schema) for i in items]
    assert (results[0].outcome, results[0].reason) == (outcome, reason)
    assert results[1].outcome == "valid"  # [DONE] passes unchecked


def test_first_chunk_with_null_finish_reason(openai_contract):
    """OpenAI's 3.1 document keeps 3.0's `nullable: true` (finish_reason): with the default
    `contract_options.nullable: lenient` the first chunk of every real stream passes."""
    op = openai_contract.match("POST", "/chat/completions")
    plan = plan_stream(op, "enforce", 200, "text/event-stream", has_contract=True)
    event = {**CHUNK, "choices": [{**CHUNK["choices"][0], "finish_reason": None}]}
    item = framer_for("sse", 1 << 20).feed(b"data: " + orjson.dumps(event) + b"\n\n")[0]
    assert check_item(item, plan.schema).outcome == "valid"
