"""send/bodies.StreamDecoder: every field, every member, in order; bounded; the same answer
however the input is split (streams feed it chunk by chunk)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from egress.errors import ResponseTooLarge, UnexpectedContentEncoding
from egress.send.bodies import StreamDecoder, decode, parse_encodings


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


DECODER = [
    # id, content-encoding fields, wire bytes, decoded or the error raised
    ("no-coding", [], b"plain", b"plain"),
    ("identity-only", ["identity"], b"plain", b"plain"),
    ("three-members", ["gzip"], gz(b"a") + gz(b"b") + gz(b"c"), b"abc"),
    ("empty-body-is-no-member", ["gzip"], b"", b""),
    ("zlib-wrapped-deflate", ["deflate"], zlib.compress(b"z"), b"z"),
    ("raw-deflate", ["deflate"], zlib.compress(b"z")[2:-4], b"z"),
    ("deflate-inside-gzip", ["deflate", "gzip"], gz(zlib.compress(b"dz")), b"dz"),
    ("upper-case-and-spaces", [" GZIP "], gz(b"u"), b"u"),
    ("truncated-member", ["gzip"], gz(b"abc")[:-3], UnexpectedContentEncoding),
    ("truncated-second-member", ["gzip"], gz(b"a") + gz(b"b")[:5], UnexpectedContentEncoding),
    ("garbage-after-member", ["gzip"], gz(b"a") + b"\x1f", UnexpectedContentEncoding),
    ("not-gzip-at-all", ["gzip"], b"{}", UnexpectedContentEncoding),
    ("one-byte-deflate", ["deflate"], b"x", UnexpectedContentEncoding),
    ("brotli", ["br"], b"\x0b\x01\x80", UnexpectedContentEncoding),
    ("over-cap-in-a-later-member", ["gzip"], gz(b"a") + gz(bytes(200)), ResponseTooLarge),
    ("over-cap-in-the-inner-stage", ["gzip", "gzip"], gz(gz(bytes(200))), ResponseTooLarge),
]


@pytest.mark.parametrize("feed", [1, 7, 65536], ids=["byte-by-byte", "7-bytes", "whole"])
@pytest.mark.parametrize("case", DECODER, ids=[c[0] for c in DECODER])
def test_stream_decoder(case, feed):
    """StreamDecoder gives the same answer however the input is split (h14 feeds stream chunks)."""
    name, fields, wire, expected = case
    decoder = StreamDecoder(fields, 100)

    def run() -> bytes:
        out = [decoder.feed(wire[i:i + feed]) for i in range(0, len(wire), feed)]
        return b"".join(out) + decoder.finish()

    if isinstance(expected, bytes):
        assert run() == expected
        assert decode(wire, fields, 100) == expected
    else:
        with pytest.raises(expected) as info:
            run()
        assert info.value.reason in ("unexpected_content_encoding", "response_too_large")


PARSE = [
    ("none", None, []),
    ("one-field", "gzip", ["gzip"]),
    ("identity-dropped", ["identity", "gzip"], ["gzip"]),
    ("two-fields-in-order", ["deflate", "GZip"], ["deflate", "gzip"]),
    ("list-in-a-field", ["gzip, , identity ,deflate"], ["gzip", "deflate"]),
]


@pytest.mark.parametrize("case", PARSE, ids=[c[0] for c in PARSE])
def test_parse_encodings(case):
    _, fields, expected = case
    assert parse_encodings(fields) == expected
