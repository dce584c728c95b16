"""Bodies: bounded reads of request bodies and bounded, exact decoding of content codings.

Never an unbounded `read()`: every byte is counted against a cap as it arrives.  Decoding
(`StreamDecoder`, and `decode` for a whole body on top of it) undoes exactly what the
caller's HTTP client would undo: every `Content-Encoding` field and every coding in it, in
order (`identity` is no coding); every member of a multi-member gzip body (requests/urllib3
and Go decode them all, `zlib.decompressobj` alone stops after the first).  Anything that
is not a complete sequence of members — trailing bytes, a truncated member, a coding egress
cannot decode — is an error, never passed on.  Every stage's output is bounded by
`max_decoded` whatever the ratio (gzip/deflate bombs, gzip inside gzip).
"""

from __future__ import annotations

import zlib
from typing import Iterable

from aiohttp import StreamReader

from egress.errors import RequestTooLarge, ResponseTooLarge, UnexpectedContentEncoding

CHUNK = 65536
_GZIP = ("gzip", "x-gzip")
_DEFLATE = ("deflate",)


async def read_request_body(content: StreamReader, declared: int | None, cap: int) -> bytes:
    """Read a request body up to `cap` bytes; RequestTooLarge past it (checked before reading
    when Content-Length already says so)."""
    if declared is not None and declared > cap:
        raise RequestTooLarge(f"request body of {declared} bytes is over the limit of {cap}")
    chunks = []
    total = 0
    while True:
        chunk = await content.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > cap:
            raise RequestTooLarge(f"request body is over the limit of {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_encodings(fields: str | Iterable[str] | None) -> list[str]:
    """The codings of one or several `Content-Encoding` field values, in the order applied
    (`identity` and empty list members dropped, names lower-cased)."""
    if not fields:
        return []
    if isinstance(fields, str):
        fields = [fields]
    codings = []
    for value in fields:
        for coding in value.split(","):
            coding = coding.strip().lower()
            if coding and coding != "identity":
                codings.append(coding)
    return codings


class _Stage:
    """One coding undone: gzip (any number of members) or deflate (zlib-wrapped or raw)."""

    def __init__(self, coding: str, cap: int) -> None:
        self.coding = coding
        self.cap = cap
        self.total = 0  # decoded bytes produced
        self._gzip = coding in _GZIP
        self._obj = None  # the member being inflated; None between members (an empty body has none)
        self._done = False  # deflate: the one stream ended
        self._head = b""  # deflate: the first byte, until the wrapper is known

    def _new(self, data: bytes):
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip only: a zlib stream is corrupt here
        # RFC 9110 "deflate" is zlib-wrapped; some servers send raw deflate (clients accept both)
        cmf, flg = data[0], data[1]
        wrapped = cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        out = []
        while data:
            if self._obj is None:
                if self._done:
                    raise UnexpectedContentEncoding(f"{self.coding} body has bytes after its end")
                if not self._gzip and len(self._head) + len(data) < 2:
                    self._head = data  # one byte (the head is empty here: head + any byte is two)
                    return b""
                if self._head:
                    data, self._head = self._head + data, b""
                # gzip: bytes after a member that are not another member fail as zlib.error (corrupt)
                # or stay an unfinished member (truncated): never decoded, never passed on
                self._obj = self._new(data)
            obj = self._obj
            while True:
                piece = obj.decompress(data, CHUNK)
                if piece:
                    self.total += len(piece)
                    if self.total > self.cap:
                        raise ResponseTooLarge(f"decoded body is over the limit of {self.cap} bytes")
                    out.append(piece)
                if obj.eof:
                    data = obj.unused_data
                    self._obj = None
                    self._done = not self._gzip  # gzip: the next bytes must be another member
                    break
                data = obj.unconsumed_tail
                if not data and len(piece) < CHUNK:
                    break  # all input taken and no output held back
        return b"".join(out)

    def finish(self) -> None:
        """The input ended: refuse an unfinished member (feed() already gave all its output)."""
        if self._head or self._obj is not None:
            raise UnexpectedContentEncoding(f"{self.coding} body is truncated")


class StreamDecoder:
    """Decodes exactly what the caller's client would: every member, every field, in order.

    `content_encoding_fields` are the field values, or the codings parse_encodings gave for
    them (it reads its own output unchanged).

    `feed(chunk)` returns the decoded bytes that chunk completes (possibly b"");
    `finish()` says the input ended and returns what is left.  Both raise
    ResponseTooLarge past `max_decoded` bytes at any stage, UnexpectedContentEncoding for a
    coding egress cannot decode (br, zstd, compress: nothing could be checked), corrupt or
    truncated data, or bytes after the last member.  Decoding errors of zlib never escape.
    """

    def __init__(self, content_encoding_fields: list[str], max_decoded: int) -> None:
        self.codings = parse_encodings(content_encoding_fields)
        unknown = [c for c in self.codings if c not in _GZIP + _DEFLATE]
        self._unsupported = unknown[0][:32] if unknown else None
        # applied in field order, so undone in reverse (never fed while a coding is unsupported)
        self._stages = [_Stage(c, max_decoded) for c in reversed(self.codings)]

    @property
    def identity(self) -> bool:
        """No coding to undo: feed() returns its input unchanged."""
        return not self.codings

    def _refuse_unsupported(self) -> None:
        if self._unsupported is not None:
            raise UnexpectedContentEncoding(f"content encoding {self._unsupported!r} is not supported")

    def feed(self, chunk: bytes) -> bytes:
        self._refuse_unsupported()
        data = chunk
        try:
            for stage in self._stages:
                data = stage.feed(data)
        except zlib.error as exc:
            raise UnexpectedContentEncoding(f"{stage.coding} body is corrupt") from exc
        return data

    def finish(self) -> bytes:
        """Always b"" (each feed() gave every byte its input completes), or the error."""
        self._refuse_unsupported()
        for stage in self._stages:
            stage.finish()
        return b""


def decode(body: bytes, content_encoding: str | Iterable[str] | None, cap: int) -> bytes:
    """A whole body decoded (see StreamDecoder); `content_encoding` is one field value or all
    of them (`headers.getall("Content-Encoding", ())`).  The body itself when there is no coding."""
    decoder = StreamDecoder(parse_encodings(content_encoding), cap)
    if decoder.identity:
        return body
    parts = []
    for start in range(0, len(body), CHUNK):
        part = decoder.feed(body[start:start + CHUNK])
        if part:
            parts.append(part)
    parts.append(decoder.finish())
    return b"".join(parts)
