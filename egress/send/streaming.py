"""Reading a streamed upstream body: chunk by chunk, under timeout.idle / timeout.stream and the byte caps.

    stream = UpstreamStream(aiohttp_response, upstream, first_byte_by=deadline)
    async for chunk in stream.chunks():     # decoded bytes, as they arrive
        ...
    stream.close()                          # drops the provider connection at once (idempotent)
    stream.release()                        # the body was read to its end: the connection goes back to the pool
    stream.settle(exc)                      # the outcome, once, for the breaker (None: completed)

Until the first body byte the exchange's `timeout.total` deadline holds (`first_byte_by`); then
each gap between chunks is bounded by `timeout.idle` and the whole stream, from its response
headers, by `timeout.stream` (bytes already buffered are taken at once, without a timer; a
stream with no time left is cut even then).  Wire bytes count against `max_response_bytes`
(the whole stream), decoded bytes against `max_decompressed_bytes` (StreamDecoder).  Nothing is held beyond the
chunk in hand (while `keep_wire` is a list, each wire chunk is also appended to it, for a
caller that may still answer the body whole; a coded chunk is decoded in SLICE-sized pieces, so
one chunk's output is bounded by what SLICE bytes inflate to; a reader keeping wire bytes also
gets the b"" of a slice that decoded to nothing).  aiohttp's errors are translated here:
UpstreamTimeout (`extra['bound']` says which: first_byte, idle or stream; at a tie, idle),
ResponseTooLarge, UnexpectedContentEncoding (also at the end of a cut coded body),
UpstreamUnavailable (the provider dropped the stream).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import aiohttp

from egress.config import Upstream
from egress.errors import ResponseTooLarge, UpstreamTimeout, UpstreamUnavailable
from egress.send.bodies import StreamDecoder
from egress.send.deadline import deadline

SLICE = 1024  # wire bytes fed to a decoder at once (one output stays near SLICE x the ratio)


class UpstreamStream:
    """One open streamed response of one upstream attempt."""

    def __init__(self, resp: aiohttp.ClientResponse, up: Upstream, *, first_byte_by: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._resp, self._up, self._clock = resp, up, clock
        self._first_byte_by = first_byte_by
        self.started = clock()
        self.first_byte_at: float | None = None
        self.wire_bytes = 0
        self.decoded_bytes = 0
        self._decoder = StreamDecoder(resp.headers.getall("Content-Encoding", []),
                                      up.limits.max_decompressed_bytes)
        self._settle: Callable[[BaseException | None], None] | None = None
        self.closed = False
        self.keep_wire: list[bytes] | None = None  # set to a list: wire chunks are kept there too

    def on_settle(self, settle: Callable[[BaseException | None], None]) -> None:
        """Who counts this stream's outcome (the breaker permit of its attempt)."""
        self._settle = settle

    def settle(self, exc: BaseException | None) -> None:
        settle, self._settle = self._settle, None
        if settle is not None:
            settle(exc)

    def _wait(self) -> tuple[float, str]:
        now, t = self._clock(), self._up.timeout
        if self.first_byte_at is None:
            left = self._first_byte_by - now
            return (left, "first_byte") if left < t.idle else (t.idle, "idle")
        left = self.started + t.stream - now
        return (left, "stream") if left < t.idle else (t.idle, "idle")

    async def chunks(self) -> AsyncIterator[bytes]:
        up, cap = self._up, self._up.limits.max_response_bytes
        content = self._resp.content
        while True:
            wait, kind = self._wait()
            try:
                if wait <= 0:  # first: no time left cuts the stream even with bytes buffered
                    raise TimeoutError
                chunk = content.read_nowait()  # what is buffered (no timer); b"" when nothing is
                if not chunk and not content.is_eof():
                    with deadline(wait):
                        chunk = await content.readany()
            except TimeoutError as exc:
                raise UpstreamTimeout(_TIMEOUT_TEXT[kind].format(up=up.name), extra={"bound": kind}) from exc
            except (aiohttp.ClientError, ConnectionError) as exc:
                raise UpstreamUnavailable(f"{up.name} dropped the stream mid-body") from exc
            if not chunk:  # b"" here only at the end of the body (readany() waits for bytes or EOF)
                self._decoder.finish()  # nothing left to yield (feed gave all); refuses a cut or bad coding
                return
            if self.first_byte_at is None:
                self.first_byte_at = self._clock()
            self.wire_bytes += len(chunk)
            if self.wire_bytes > cap:
                raise ResponseTooLarge(f"the stream from {up.name} is over max_response_bytes ({cap})")
            if self.keep_wire is not None:
                self.keep_wire.append(chunk)
            if self._decoder.identity:
                self.decoded_bytes += len(chunk)
                yield chunk
                continue
            for start in range(0, len(chunk), SLICE):
                out = self._decoder.feed(chunk[start:start + SLICE])
                if out or self.keep_wire is not None:  # a reader keeping wire bytes sees every chunk
                    self.decoded_bytes += len(out)
                    yield out

    def release(self) -> None:
        """The body was read to its end: the connection may serve another request."""
        if not self.closed:
            self.closed = True
            self._resp.release()

    def close(self) -> None:
        """Drop the provider connection (never returned to the pool mid-stream)."""
        if not self.closed:
            self.closed = True
            self._resp.close()


_TIMEOUT_TEXT = {
    "first_byte": "{up} sent no body byte within timeout.total",
    "idle": "{up} sent nothing for longer than timeout.idle",
    "stream": "the stream from {up} ran longer than timeout.stream",
}
