"""Bodies: bounded reads of request bodies and bounded decompression of response bodies.

Never an unbounded `read()`: every byte is counted against a cap as it arrives, and
decompression stops at `max_decompressed_bytes` whatever the ratio (gzip/deflate bombs).
"""

from __future__ import annotations

import zlib

from aiohttp import StreamReader

from egress.errors import RequestTooLarge, ResponseTooLarge, UnexpectedContentEncoding

_CHUNK = 65536


async def read_request_body(content: StreamReader, declared: int | None, cap: int) -> bytes:
    """Read a request body up to `cap` bytes; RequestTooLarge past it (checked before reading
    when Content-Length already says so)."""
    if declared is not None and declared > cap:
        raise RequestTooLarge(f"request body of {declared} bytes is over the limit of {cap}")
    chunks = []
    total = 0
    while True:
        chunk = await content.read(_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > cap:
            raise RequestTooLarge(f"request body is over the limit of {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_encodings(header: str | None) -> list[str]:
    if not header:
        return []
    return [c.strip().lower() for c in header.split(",") if c.strip() and c.strip().lower() != "identity"]


def decode(body: bytes, content_encoding: str | None, cap: int) -> bytes:
    """Undo Content-Encoding (gzip, x-gzip, deflate; several in order) without ever holding
    more than `cap` decompressed bytes. Unknown encodings raise UnexpectedContentEncoding."""
    for coding in reversed(parse_encodings(content_encoding)):
        try:
            if coding in ("gzip", "x-gzip"):
                body = _inflate(body, zlib.MAX_WBITS | 16, cap)
            elif coding == "deflate":
                try:
                    body = _inflate(body, zlib.MAX_WBITS, cap)
                except zlib.error:  # raw deflate, as some servers send it
                    body = _inflate(body, -zlib.MAX_WBITS, cap)
            else:
                raise UnexpectedContentEncoding(f"content encoding {coding[:32]!r} is not supported")
        except zlib.error as exc:
            raise UnexpectedContentEncoding(f"{coding} body is corrupt") from exc
    return body


def _inflate(data: bytes, wbits: int, cap: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = []
    total = 0
    pending = data
    while pending:
        chunk = inflater.decompress(pending, _CHUNK)
        total += len(chunk)
        if total > cap:
            raise ResponseTooLarge(f"decompressed response is over the limit of {cap} bytes")
        out.append(chunk)
        pending = inflater.unconsumed_tail
        if inflater.eof:
            break
    while not inflater.eof:
        chunk = inflater.flush(_CHUNK) if not pending else b""
        if not chunk:
            break
        total += len(chunk)
        if total > cap:
            raise ResponseTooLarge(f"decompressed response is over the limit of {cap} bytes")
        out.append(chunk)
    if not inflater.eof:
        raise zlib.error("compressed body is truncated")
    return b"".join(out)


class StreamDecoder:
    """Undo Content-Encoding chunk by chunk, never more than `max_decoded` bytes in total.

    A minimal version (identity, gzip/x-gzip, deflate) of the interface the hostile-provider work
    defines: `StreamDecoder(content_encoding_fields, max_decoded)`, `feed(chunk) -> bytes`,
    `finish() -> bytes`.  Raises ResponseTooLarge past the cap (at every layer), and
    UnexpectedContentEncoding for an unknown coding or a corrupt / truncated stream.
    """

    def __init__(self, content_encoding_fields: list[str], max_decoded: int) -> None:
        codings = [c for value in content_encoding_fields for c in parse_encodings(value)]
        self._stages = []
        for coding in reversed(codings):
            if coding in ("gzip", "x-gzip"):
                self._stages.append(zlib.decompressobj(zlib.MAX_WBITS | 16))
            elif coding == "deflate":
                self._stages.append(zlib.decompressobj(zlib.MAX_WBITS))
            else:
                raise UnexpectedContentEncoding(f"content encoding {coding[:32]!r} is not supported")
        self._max = max_decoded
        self._totals = [0] * (len(self._stages) + 1)

    def _count(self, layer: int, data: bytes) -> bytes:
        self._totals[layer] += len(data)
        if self._totals[layer] > self._max:
            raise ResponseTooLarge(f"decompressed response is over the limit of {self._max} bytes")
        return data

    def feed(self, chunk: bytes) -> bytes:
        for layer, stage in enumerate(self._stages):
            out, pending = [], chunk
            try:
                while pending:
                    out.append(self._count(layer, stage.decompress(pending, _CHUNK)))
                    pending = stage.unconsumed_tail
            except zlib.error as exc:
                raise UnexpectedContentEncoding("compressed stream is corrupt") from exc
            chunk = b"".join(out)
        return chunk if self._stages else self._count(0, chunk)

    def finish(self) -> bytes:
        tail = b""
        for layer, stage in enumerate(self._stages):
            try:
                tail = self._count(layer, (stage.decompress(tail) if tail else b"") + stage.flush())
            except zlib.error as exc:
                raise UnexpectedContentEncoding("compressed stream is corrupt") from exc
            if not stage.eof:
                raise UnexpectedContentEncoding("compressed stream is truncated")
        return tail
