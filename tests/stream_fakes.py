"""A fake streaming provider: writes scripted chunks over time on a real socket, and notes when the
connection to it was closed (egress must close it when a stream is cut or its caller goes away)."""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass, field

import orjson
from aiohttp import web


def sse(obj) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def chunk(i: int, text: str = "hi") -> dict:
    """An OpenAI chat.completion.chunk."""
    return {"id": f"chatcmpl-{i}", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-x",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


@dataclass
class Script:
    """(delay before, bytes) steps; then `forever` repeats the last step until the peer is gone."""

    steps: list[tuple[float, bytes]]
    content_type: str = "text/event-stream"
    forever: bool = False
    gzip: bool = False
    headers: dict = field(default_factory=dict)
    sent_at: list[float] = field(default_factory=list)
    bytes_sent: int = 0
    closed_at: float | None = None  # when a write found the connection closed
    finished: bool = False

    async def handler(self, request: web.BaseRequest) -> web.StreamResponse:
        headers = {"Content-Type": self.content_type, **self.headers}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16) if self.gzip else None
        steps = list(self.steps)
        try:
            i = 0
            while i < len(steps) or (self.forever and steps):
                delay, data = steps[min(i, len(steps) - 1)]
                i += 1
                until = time.monotonic() + delay
                while True:  # wait in slices, noticing a closed connection without writing
                    if request.transport is None or request.transport.is_closing():
                        raise ConnectionResetError
                    if time.monotonic() >= until:
                        break
                    await asyncio.sleep(min(0.02, until - time.monotonic()))
                if packer is not None:
                    data = packer.compress(data) + packer.flush(zlib.Z_SYNC_FLUSH)
                await resp.write(data)
                self.bytes_sent += len(data)
                self.sent_at.append(time.monotonic())
            if packer is not None:
                await resp.write(packer.flush())
            await resp.write_eof()
            self.finished = True
        except (ConnectionError, asyncio.CancelledError):
            self.closed_at = time.monotonic()
        return resp

