"""The violation recorder (`record:`) writes a stream's violating event as it writes a violating whole body:
the item's JSON (bounded by the recorder's max_bytes), once per stream, privately, learnable."""

import asyncio

import orjson
import pytest
import yaml

from egress.contracts.learn import learn
from tests.conftest import base_config
from tests.stream_fakes import Script, chunk, sse

SCHEMA = {"type": "object", "required": ["id", "object"],
          "properties": {"id": {"type": "string"}, "object": {"const": "chat.completion.chunk"}}}
BAD = {"id": 7, "object": "surprise", "choices": []}


async def start(tmp_path, provider, proxy, script, mode, **record):
    fake = await provider(script.handler)
    ops = {"POST /chat/completions": {"responses": {"200": {"content_type": "text/event-stream",
                                                            "item_schema": SCHEMA}}}}
    (tmp_path / "ai.yaml").write_text(yaml.safe_dump({"operations": ops}))
    upstream = {"name": "ai", "url": fake.url + "/v1", "callers": ["*"], "allow_private_addresses": True,
                "contract": "ai.yaml", "retry": {"attempts": 1}, "mode": mode}
    doc = base_config([upstream], contracts_dir=str(tmp_path), record={"dir": str(tmp_path / "samples"), **record})
    return await proxy(doc, base_dir=tmp_path)


def recorded(tmp_path) -> list[tuple[dict, bytes]]:
    out = []
    for meta in sorted((tmp_path / "samples").rglob("*.meta.json")):
        out.append((orjson.loads(meta.read_bytes()), meta.with_name(meta.name.replace(".meta", "")).read_bytes()))
    return out


@pytest.mark.parametrize("mode", ["report", "enforce"])
async def test_the_first_violating_event_of_a_stream_is_recorded(mode, tmp_path, provider, proxy):
    script = Script([(0.02, sse(chunk(1))), (0.02, sse(BAD)), (0.02, sse({**BAD, "id": 8})), (0.02, sse(chunk(2)))])
    p = await start(tmp_path, provider, proxy, script, mode)
    async with p.request("POST", "/ai/chat/completions") as resp:
        assert resp.status == 200
        await resp.read()
    await asyncio.sleep(0.05)
    [(meta, body)] = recorded(tmp_path)  # one per stream, even when report mode sees more
    assert meta == {"upstream": "ai", "operation": "POST /chat/completions", "status": 200,
                    "content_type": "text/event-stream"}
    assert orjson.loads(body) == BAD  # the event's data, not its SSE framing
    draft = learn(tmp_path / "samples")
    assert "POST /chat/completions" in draft["operations"]


async def test_a_violating_event_over_the_recorders_max_bytes_is_not_recorded(tmp_path, provider, proxy):
    big = {**BAD, "choices": ["x" * 5000]}
    script = Script([(0.02, sse(big))])
    p = await start(tmp_path, provider, proxy, script, "report", max_bytes=1000)
    async with p.request("POST", "/ai/chat/completions") as resp:
        assert resp.status == 200 and b"xxxxx" in await resp.read()
    await asyncio.sleep(0.05)
    assert recorded(tmp_path) == []


async def test_a_valid_stream_records_nothing(tmp_path, provider, proxy):
    script = Script([(0.02, sse(chunk(1))), (0.02, sse(chunk(2)))])
    p = await start(tmp_path, provider, proxy, script, "enforce")
    async with p.request("POST", "/ai/chat/completions") as resp:
        await resp.read()
    await asyncio.sleep(0.05)
    assert recorded(tmp_path) == []
