"""bodies.StreamDecoder as the streaming path uses it: chunk by chunk, capped (more in test_bodies.py).

An identity body is not decoding: its size is bounded by max_response_bytes on the wire
(send/streaming.py), not by the decoder."""

import gzip
import zlib

import pytest

from egress.errors import ResponseTooLarge, UnexpectedContentEncoding
from egress.send.bodies import StreamDecoder

DATA = b'data: {"id": "a"}\n\n' * 1000


def feed_all(decoder, blob, step=7):
    return b"".join(decoder.feed(blob[i:i + step]) for i in range(0, len(blob), step)) + decoder.finish()


@pytest.mark.parametrize("fields,blob", [
    ([], DATA), (["identity"], DATA), (["gzip"], gzip.compress(DATA)), (["x-gzip"], gzip.compress(DATA)),
    (["deflate"], zlib.compress(DATA)),
], ids=["none", "identity", "gzip", "x-gzip", "deflate"])
def test_decodes_chunk_by_chunk(fields, blob):
    assert feed_all(StreamDecoder(fields, 1 << 20), blob) == DATA


CASES = [
    ("gzip-bomb", ["gzip"], gzip.compress(b"\0" * (8 << 20)), ResponseTooLarge),
    ("unknown-coding", ["br"], DATA, UnexpectedContentEncoding),
    ("truncated-gzip", ["gzip"], gzip.compress(DATA)[:-12], UnexpectedContentEncoding),
    ("corrupt-gzip", ["gzip"], b"\x1f\x8b" + b"\xff" * 40, UnexpectedContentEncoding),
]


@pytest.mark.parametrize("fields,blob,error", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refuses(fields, blob, error):
    with pytest.raises(error):
        feed_all(StreamDecoder(fields, 1 << 20), blob, step=4096)
