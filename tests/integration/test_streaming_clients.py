"""Real streaming callers through egress: the openai SDK (`stream=True`, base_url through egress) and httpx."""

import time

import httpx
import openai
import pytest
import yaml

from tests.conftest import base_config
from tests.stream_fakes import Script, chunk, sse

MARKER = "secret-MARKER-4410"
SDK_KEY = "sk-internal-never-forwarded"
PARTNER_KEY = "sk-partner-injected"
CHUNK_SCHEMA = {"type": "object", "required": ["id", "object", "choices"],
                "properties": {"object": {"const": "chat.completion.chunk"}, "choices": {"type": "array"}}}


async def start(tmp_path, provider, proxy, script, **over):
    fake = await provider(script.handler)
    ops = {"POST /chat/completions": {"responses": {"200": {"content_type": "text/event-stream",
                                                            "item_schema": CHUNK_SCHEMA}}}}
    (tmp_path / "ai.yaml").write_text(yaml.safe_dump({"operations": ops}))
    upstream = {"name": "ai", "url": fake.url + "/v1", "callers": ["*"], "allow_private_addresses": True,
                "contract": "ai.yaml", "retry": {"attempts": 1},
                "credential": {"header": "Authorization", "value": f"Bearer {PARTNER_KEY}"}, **over}
    p = await proxy(base_config([upstream], contracts_dir=str(tmp_path)), base_dir=tmp_path)
    return fake, p


def sdk(p):
    return openai.AsyncOpenAI(api_key=SDK_KEY, base_url=p.url + "/ai", max_retries=0,
                              default_headers={"X-Egress-Caller": "checkout"})


async def test_openai_sdk_streams_event_by_event(tmp_path, provider, proxy):
    script = Script([(0.3, sse(chunk(i, f"w{i}"))) for i in range(4)] + [(0, b"data: [DONE]\n\n")])
    fake, p = await start(tmp_path, provider, proxy, script)
    client = sdk(p)
    got, lags = [], []
    stream = await client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}],
                                                  stream=True)
    async for event in stream:
        lags.append(time.monotonic() - script.sent_at[len(got)])
        got.append(event.choices[0].delta.content)
    await client.close()
    assert got == ["w0", "w1", "w2", "w3"]
    assert max(lags) < 0.05 * 4, lags  # done-when: within 50 ms; loose bound on a shared machine
    seen = fake.requests[0]
    assert seen.headers["Authorization"] == f"Bearer {PARTNER_KEY}"
    assert SDK_KEY not in repr(dict(seen.headers))


async def test_openai_sdk_raises_on_a_violating_event(tmp_path, provider, proxy):
    bad = sse({"id": "x", "object": MARKER, "choices": []})
    script = Script([(0.05, sse(chunk(1))), (0.05, bad), (0.05, sse(chunk(2)))])
    fake, p = await start(tmp_path, provider, proxy, script)
    client = sdk(p)
    got = []
    stream = await client.chat.completions.create(model="gpt-x", messages=[], stream=True)
    with pytest.raises(openai.APIError) as info:
        async for event in stream:
            got.append(event.id)
    await client.close()
    assert got == ["chatcmpl-1"]
    assert "contract_violation" in str(info.value)
    assert info.value.code == "contract_violation" and info.value.type == "egress_error"
    assert MARKER not in str(info.value.body)


async def test_httpx_streaming_client_reads_lines_as_they_come(tmp_path, provider, proxy):
    script = Script([(0.2, sse(chunk(i))) for i in range(3)])
    fake, p = await start(tmp_path, provider, proxy, script)
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("POST", p.url + "/ai/chat/completions", json={"stream": True},
                                 headers={"X-Egress-Caller": "checkout"}) as resp:
            assert resp.status_code == 200 and resp.headers["transfer-encoding"] == "chunked"
            assert "content-length" not in resp.headers
            first_at, lines = None, []
            async for line in resp.aiter_lines():
                if first_at is None:
                    first_at = time.monotonic()
                lines.append(line)
    assert [line for line in lines if line] == [sse(chunk(i)).decode().strip() for i in range(3)]
    assert first_at < script.sent_at[-1] - 0.2  # the first event came before the last was sent
