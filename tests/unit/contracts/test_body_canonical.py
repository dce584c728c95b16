"""The duplicate-key check's fast path: a body that is orjson's own writing of its value (compact,
or 2-space indented) is proven duplicate-free by one comparison; every other writing still takes
the colon counts.  Each writing a provider may use, with and without a duplicate key, and a
differential test against the standard library's reading of every member."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.contracts import body as body_mod
from egress.contracts.body import DUPLICATE_KEYS, BodyError, parse_json

VALUE = {"id": "ch_1", "object": "charge", "amount": 2000, "paid": True, "refunds": {"data": [], "has_more": False},
         "metadata": {"order": "12:30", "note": "a,b"}, "items": [{"k": 1}, {"k": 2.5}, None]}


def compact(v) -> bytes:
    return orjson.dumps(v)


def indent2(v) -> bytes:
    return orjson.dumps(v, option=orjson.OPT_INDENT_2)


WRITINGS = [
    ("orjson-compact", compact),
    ("orjson-indent-2", indent2),
    ("orjson-indent-2-newline-after", lambda v: indent2(v) + b"\n"),
    ("orjson-compact-crlf-after", lambda v: compact(v) + b"\r\n"),
    ("python-default-separators", lambda v: json.dumps(v).encode()),
    ("python-indent-4", lambda v: json.dumps(v, indent=4).encode()),
    ("python-compact-ascii-escapes", lambda v: json.dumps(v, separators=(",", ":")).encode()),
    ("leading-whitespace", lambda v: b" \n" + compact(v)),
]


def with_duplicate(text: bytes, key: bytes = b'"amount"') -> bytes:
    """The same writing with the first member repeated in front, hostile value first."""
    at = text.index(key)
    sep = text[at + len(key):text.index(b"2000", at)]
    return text[:at] + key + sep + b'"evil",' + text[at:]


@pytest.mark.parametrize("writing", WRITINGS, ids=[w[0] for w in WRITINGS])
def test_each_writing_accepted_as_written(writing):
    text = writing[1](VALUE)
    assert parse_json(text) == VALUE


@pytest.mark.parametrize("writing", WRITINGS, ids=[w[0] for w in WRITINGS])
def test_each_writing_with_a_duplicate_refused(writing):
    text = with_duplicate(writing[1](VALUE))
    assert orjson.loads(text)["amount"] == 2000  # orjson keeps the last: the fast path must not trust it
    with pytest.raises(BodyError) as err:
        parse_json(text)
    assert str(err.value) == DUPLICATE_KEYS


FAST = [
    ("compact-as-orjson-writes", compact(VALUE), True),
    ("indented-as-orjson-writes", indent2(VALUE), True),
    ("indented-then-newline", indent2(VALUE) + b"\n", True),
    ("compact-then-a-newline", compact({**VALUE, "pad": "x" * 300}) + b"\n", True),
    ("python-separators", json.dumps(VALUE).encode(), False),
    ("indented-by-4", json.dumps(VALUE, indent=4).encode(), False),
    ("indented-by-2-without-the-space", json.dumps(VALUE, indent=2, separators=(",", ":")).encode(), False),
    ("compact-with-a-slash-escape", compact(VALUE).replace(b'"ch_1"', b'"ch\\/1"'), False),
    ("compact-but-a-string-near-the-start-holds-comma-space",  # the sniff's miss costs only the counts
     compact({"note": "a, b", **VALUE}), False),
    ("compact-with-an-exponent", compact({**VALUE, "amount": 2000.0}).replace(b"2000.0", b"2e3"), False),
]


@pytest.mark.parametrize("case", FAST, ids=[c[0] for c in FAST])
def test_which_writings_take_the_fast_path(case):
    _, text, fast = case
    value = orjson.loads(text)
    assert body_mod._written_by_orjson(text, indent2(value), value) is fast


def _members(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("dup")
    return dict(pairs)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**15, 10**15) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from("abc:,\"\\é"), inner, max_size=3),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.sampled_from([w[0] for w in WRITINGS]), st.booleans())
def test_agrees_with_the_standard_library(value, writing, duplicate):
    text = dict(WRITINGS)[writing](value)
    if duplicate and isinstance(value, dict) and value:
        key = next(iter(value))
        member = json.dumps({key: "evil"}, separators=(",", ":")).encode()[1:-1]
        text = text.replace(b"{", b"{" + member + b",", 1) if text.lstrip()[:1] == b"{" else text
    try:
        expected = json.loads(text, object_pairs_hook=_members)
    except ValueError:
        with pytest.raises(BodyError) as err:
            parse_json(text)
        assert str(err.value) == DUPLICATE_KEYS
    else:
        assert parse_json(text) == expected


class _CountingOrjson:
    """orjson as body.py sees it, counting the compact writings tried (the sniff's whole job)."""

    OPT_INDENT_2, JSONDecodeError, JSONEncodeError = orjson.OPT_INDENT_2, orjson.JSONDecodeError, orjson.JSONEncodeError

    def __init__(self) -> None:
        self.compact_writings = 0

    def loads(self, text):
        return orjson.loads(text)

    def dumps(self, value, option=None):
        if option is None:
            self.compact_writings += 1
            return orjson.dumps(value)
        return orjson.dumps(value, option=option)


SNIFFED = [
    ("compact-is-tried", compact(VALUE).replace(b'"ch_1"', b'"ch\\/1"'), 1),
    ("indented-by-4-is-not", json.dumps(VALUE, indent=4).encode(), 0),
    ("newline-only-spacing-is-not", json.dumps(VALUE, indent=0, separators=(",", ":")).encode(), 0),
    ("colon-space-is-not", json.dumps(VALUE, separators=(",", ": ")).encode(), 0),
    ("comma-space-is-not", json.dumps(VALUE, separators=(", ", ":")).encode(), 0),
    ("as-orjson-indents-needs-no-second-writing", indent2(VALUE), 0),
    ("no-object-no-duplicate-check", compact([1, "a:b", [2.5, None]]), 0),
    ("backslash-u-escapes-go-exact-at-once", compact(VALUE).replace(b'"ch_1"', b'"ch\\u005f1"'), 0),
]


@pytest.mark.parametrize("case", SNIFFED, ids=[c[0] for c in SNIFFED])
def test_the_compact_writing_is_tried_only_on_a_compact_body(case, monkeypatch):
    _, text, tried = case
    counting = _CountingOrjson()
    monkeypatch.setattr(body_mod, "orjson", counting)
    assert parse_json(text) == json.loads(text)
    assert counting.compact_writings == tried


def test_duplicates_are_refused_in_every_writing():
    for _, write in WRITINGS:
        for text in (write(VALUE).replace(b'"id"', b'"amount":1,"id"', 1), b'{"a":1,"a":2}', b'[{"k":1,"k":1}]'):
            with pytest.raises(BodyError, match=DUPLICATE_KEYS):
                parse_json(text)


def test_at_orjson_writer_limit():
    deep = b"[" * 254 + b"1" + b"]" * 254  # both writings still possible
    assert parse_json(deep, 1000) == json.loads(deep)
    deeper = b"[" * 255 + b'{"a":1,"a":2}' + b"]" * 255  # past the writer limit: the exact path
    with pytest.raises(BodyError, match=DUPLICATE_KEYS):
        parse_json(deeper, 1000)


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES, st.sampled_from([w[0] for w in WRITINGS]), st.booleans(), st.integers(1, 6))  # config: minimum 1
def test_agrees_with_the_standard_library_at_every_depth_limit(value, writing, duplicate, max_depth):
    text = dict(WRITINGS)[writing](value)
    if duplicate and isinstance(value, dict) and value:
        key = next(iter(value))
        member = json.dumps({key: "evil"}, separators=(",", ":")).encode()[1:-1]
        text = text.replace(b"{", b"{" + member + b",", 1) if text.lstrip()[:1] == b"{" else text
    if _depth(json.loads(text)) > max_depth:
        with pytest.raises(BodyError, match=f"nested deeper than {max_depth}"):
            parse_json(text, max_depth)
        return
    try:
        expected = json.loads(text, object_pairs_hook=_members)
    except ValueError:
        with pytest.raises(BodyError) as err:
            parse_json(text, max_depth)
        assert str(err.value) == DUPLICATE_KEYS
    else:
        assert parse_json(text, max_depth) == expected
