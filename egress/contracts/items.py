"""Items of a stream: SSE events, NDJSON / JSON Lines lines and json-seq records, framed byte for byte and checked one by one.

    framer = framer_for("sse", max_item_bytes)       # or "ndjson", "json-seq"
    for item in framer.feed(chunk): ...              # complete items, in order
    for item in framer.finish(): ...                 # at the end of the stream
    result = check_item(item, schema, max_depth=64, max_violations=10)

Concatenating every `Item.raw` gives back exactly the bytes fed (framing, comments, `id:`,
`retry:`, a BOM, CRLF or CR line ends included): the proxy forwards `raw`, never a re-encoding.
`Item.data` is what an item contract checks: an SSE event's `data` lines joined with LF, an
NDJSON line, a json-seq record; None when there is nothing to check (an SSE event without
data, a comment, `data: [DONE]`, a blank line).  Each checked item is parsed with the same
limits as a whole body (`body.parse_json`: depth, duplicate keys, exact numbers).  A partial
item larger than the cap raises ItemTooLarge, so memory per stream is bounded by one item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from egress.contracts.body import BodyError, parse_json
from egress.contracts.media import media_type, select
from egress.contracts.results import UNMATCHED, VALID, CheckResult

#: sequential media types and how their items are framed
SEQUENTIAL = {
    "text/event-stream": "sse",
    "application/x-ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "application/json-seq": "json-seq",
}
_BOM = b"\xef\xbb\xbf"
_EOL = re.compile(rb"[\r\n]")
_DONE = b"[DONE]"
_RS = 0x1E


class ItemTooLarge(ValueError):
    """One item (event, line, record) is over the per-item cap."""


@dataclass(frozen=True, slots=True)
class Item:
    raw: bytes  # exactly as the provider sent it
    data: bytes | None  # what is checked; None: passes unchecked


def stream_kind(content_type: str | None) -> str | None:
    """`sse`, `ndjson` or `json-seq` for a sequential media type, else None."""
    return SEQUENTIAL.get(media_type(content_type) or "")


def streamed(status: int, media: str | None) -> bool:
    """Whether a response is streamed item by item: a 2xx that has a body, whose (parsed, see
    media.media_type) media type is sequential.  The one stream test: check.response_facts uses it."""
    return 200 <= status < 300 and status not in (204, 205) and media in SEQUENTIAL


class _Framer:
    def __init__(self, max_item: int) -> None:
        self._buf = bytearray()
        self._origin = 0  # start of the item under construction in _buf
        self._max = max_item

    def _compact(self) -> None:
        if self._origin:
            del self._buf[:self._origin]
            self._shift(self._origin)
            self._origin = 0
        if len(self._buf) > self._max:
            raise ItemTooLarge(f"an item is over the limit of {self._max} bytes")

    def _shift(self, n: int) -> None:  # offsets into _buf move down by n
        pass

    def _emit(self, end: int) -> bytes:
        raw = bytes(self._buf[self._origin:end])
        if len(raw) > self._max:
            raise ItemTooLarge(f"an item is over the limit of {self._max} bytes")
        self._origin = end
        return raw


class SseFramer(_Framer):
    """text/event-stream (WHATWG HTML, server-sent events): lines end in CRLF, LF or CR; an
    empty line ends an event; a leading BOM is skipped for parsing (and forwarded)."""

    def __init__(self, max_item: int) -> None:
        super().__init__(max_item)
        self._scan = 0  # where the search for the next line end resumes
        self._line = 0  # start of the current line
        self._data: list[bytes] = []
        self._skip_lf = False  # the last line ended in CR at the end of a chunk
        self._at_start = True

    def _shift(self, n: int) -> None:
        self._scan -= n
        self._line -= n

    def feed(self, chunk: bytes) -> list[Item]:
        buf = self._buf
        buf += chunk
        if self._at_start:
            if len(buf) < 3 and _BOM.startswith(bytes(buf)):
                return []
            self._at_start = False
            if buf.startswith(_BOM):
                self._scan = self._line = 3
        items: list[Item] = []
        while True:
            if self._skip_lf:
                if self._scan >= len(buf):
                    break
                if buf[self._scan] == 0x0A:
                    self._scan += 1
                self._skip_lf = False
                self._line = self._scan
            m = _EOL.search(buf, self._scan)
            if m is None:
                break
            end = m.start()
            nxt = end + 1
            if buf[end] == 0x0D:
                if nxt < len(buf):
                    nxt += buf[nxt] == 0x0A
                else:
                    self._skip_lf = True
            line = bytes(buf[self._line:end])
            self._scan = self._line = nxt
            if line:
                self._field(line)
            else:
                items.append(self._dispatch(nxt))
        self._compact()
        return items

    def _field(self, line: bytes) -> None:
        if line[0] == 0x3A:  # ":" comment
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)

    def _dispatch(self, end: int) -> Item:
        data = b"\n".join(self._data) if self._data else None
        self._data = []
        if data == _DONE:
            data = None
        return Item(self._emit(end), data)

    def finish(self) -> list[Item]:
        """The bytes after the last complete event (clients discard an unfinished event; it is
        still checked, as a lenient client might dispatch it)."""
        if self._origin >= len(self._buf):
            return []
        if self._line < len(self._buf) and not self._skip_lf:
            self._field(bytes(self._buf[self._line:]))
        return [self._dispatch(len(self._buf))]


class LineFramer(_Framer):
    """NDJSON / JSON Lines: one JSON text per LF-terminated line (CRLF accepted); blank lines pass."""

    def __init__(self, max_item: int) -> None:
        super().__init__(max_item)
        self._scan = 0

    def _shift(self, n: int) -> None:
        self._scan -= n

    def feed(self, chunk: bytes) -> list[Item]:
        buf = self._buf
        buf += chunk
        items = []
        while (end := buf.find(b"\n", self._scan)) >= 0:
            raw = self._emit(end + 1)
            self._scan = end + 1
            items.append(self._item(raw))
        self._scan = len(buf)
        self._compact()
        return items

    @staticmethod
    def _item(raw: bytes) -> Item:
        text = raw.strip()
        return Item(raw, text or None)

    def finish(self) -> list[Item]:
        if self._origin >= len(self._buf):
            return []
        return [self._item(self._emit(len(self._buf)))]


class SeqFramer(_Framer):
    """application/json-seq (RFC 7464): records RS JSON-text LF.  A record is complete at the next
    RS, or at a LF ending what has arrived when the text so far is whole JSON."""

    def feed(self, chunk: bytes) -> list[Item]:
        buf = self._buf
        buf += chunk
        items = []
        while (nxt := buf.find(_RS, self._origin + 1)) >= 0:
            items.append(self._item(self._emit(nxt)))
        if len(buf) > self._origin and buf[-1] == 0x0A:
            text = bytes(buf[self._origin:]).lstrip(b"\x1e").strip()
            if text and _whole_json(text):
                items.append(self._item(self._emit(len(buf))))
        self._compact()
        return items

    @staticmethod
    def _item(raw: bytes) -> Item:
        text = raw[1:] if raw[:1] == b"\x1e" else raw  # a record without RS is checked (and fails)
        return Item(raw, text.strip() or None)

    def finish(self) -> list[Item]:
        if self._origin >= len(self._buf):
            return []
        return [self._item(self._emit(len(self._buf)))]


def _whole_json(text: bytes) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


_FRAMERS = {"sse": SseFramer, "ndjson": LineFramer, "json-seq": SeqFramer}


def framer_for(kind: str, max_item: int) -> SseFramer | LineFramer | SeqFramer:
    return _FRAMERS[kind](max_item)


def check_item(item: Item, schema: Any, *, max_depth: int = 64, max_violations: int = 10) -> CheckResult:
    """Judge one item against the item schema (a contracts CompiledSchema, or None: JSON only).
    The result never contains a value taken from the item."""
    if item.data is None:
        return VALID
    try:
        instance = parse_json(item.data, max_depth)
    except BodyError as exc:
        return CheckResult("violated", "invalid_json", detail=str(exc))
    if schema is None:
        return VALID
    try:
        if schema.is_valid(instance):
            return VALID
        violations = schema.violations(instance, max_violations)
    except (ValueError, TypeError, OverflowError) as exc:
        return CheckResult("violated", "invalid_json", detail=f"unsupported JSON value ({type(exc).__name__})")
    return CheckResult("violated", "contract_violation", violations)


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """How one streamed response is handled: its framing, whether items are checked (and
    against what), and the verdict known before the first item (`outcome`, `reason`)."""

    kind: str
    checked: bool = False
    schema: Any = None
    outcome: str = "unchecked"  # valid | unmatched | unchecked | violated
    reason: str | None = None  # unexpected_content_type, when outcome is violated


def plan_stream(op: Any, mode: str, status: int, content_type: str | None, *,
                has_contract: bool) -> StreamPlan | None:
    """The plan for a sequential response, or None when the content type is not sequential.

    `op` is the matched contracts Operation (None: unmatched), `mode` the effective mode."""
    kind = stream_kind(content_type)
    if kind is None:
        return None
    if op is None:
        return StreamPlan(kind, outcome=UNMATCHED.outcome if has_contract else "unchecked")
    if mode == "off":
        return StreamPlan(kind)
    spec = op.response_for(status)
    if spec is None:
        return StreamPlan(kind, outcome="unmatched")
    if not spec.content:
        return StreamPlan(kind, outcome="valid")
    entry = select(spec.content, content_type)
    if entry is None:
        return StreamPlan(kind, outcome="violated", reason="unexpected_content_type")
    return StreamPlan(kind, checked=entry.schema is not None, schema=entry.schema, outcome="valid")
