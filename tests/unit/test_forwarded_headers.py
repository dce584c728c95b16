"""respond.forwarded_headers: which provider headers a caller sees, and the set-cookie event
(named cases over a real CIMultiDict, as aiohttp hands the provider's headers over); the memo of
header names against the loop it replaced; build_response's headers and body."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from egress import respond
from egress.check import Checked
from egress.exchange import Exchange
from egress.respond import FORWARDED, FORWARDED_PREFIXES, build_response, forwarded_headers
from egress.sanitize import connection_tokens
from egress.send.client import UpstreamResponse
from egress.send.inflight import InflightBudget


class Answer:
    def __init__(self, pairs):
        self.headers = CIMultiDictProxy(CIMultiDict(pairs))


CASES = [
    # id, provider headers, forwarded (in order), set-cookie event
    ("allowlisted-kept", [("Date", "d"), ("ETag", '"e"'), ("Content-Type", "application/json")],
     [("Date", "d"), ("ETag", '"e"'), ("Content-Type", "application/json")], False),
    ("unlisted-dropped", [("Server", "nginx"), ("X-Powered-By", "php"), ("Content-Length", "2")], [], False),
    ("hop-by-hop-dropped", [("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"), ("Age", "1")],
     [("Age", "1")], False),
    ("rate-limit-prefixes-kept", [("X-RateLimit-Remaining", "9"), ("ratelimit-reset", "3"),
                                  ("Anthropic-RateLimit-Requests-Limit", "50")],
     [("X-RateLimit-Remaining", "9"), ("ratelimit-reset", "3"), ("Anthropic-RateLimit-Requests-Limit", "50")], False),
    ("connection-named-dropped-even-if-allowlisted", [("Connection", "X-Request-Id, ETag"), ("X-Request-Id", "r"),
                                                      ("ETag", '"e"'), ("Date", "d")], [("Date", "d")], False),
    ("second-content-type-dropped", [("Content-Type", "application/json"), ("content-type", "text/html")],
     [("Content-Type", "application/json")], False),
    ("set-cookie-dropped-with-event", [("Set-Cookie", "sid=evil"), ("Date", "d")], [("Date", "d")], True),
    ("set-cookie2-dropped-with-event", [("set-cookie2", "legacy=1")], [], True),
    ("no-event-without-a-cookie", [("X-Secret", "s")], [], False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_forwarded_headers(case):
    _, pairs, expected, cookie_event = case
    ex = Exchange("GET")
    assert list(forwarded_headers(Answer(pairs), ex).items()) == expected
    events = [(e.name, e.attrs) for e in ex.events]
    assert events == ([("egress.header_dropped", {"name": "set-cookie"})] if cookie_event else [])
    assert ex.anomalous is False  # a dropped cookie is recorded, not an anomaly


# --- the memo of header names, proven against the loop it replaced ------------------------------

def old_forwarded_headers(resp, ex):
    """forwarded_headers before the name memo (the ORACLE), verbatim."""
    connection_named = connection_tokens(resp.headers)
    headers = CIMultiDict()
    cookie_dropped = False
    for name, value in resp.headers.items():
        low = name.lower()
        if ((low in FORWARDED or low.startswith(FORWARDED_PREFIXES)) and low not in connection_named
                and not (low == "content-type" and "Content-Type" in headers)):
            headers.add(name, value)
        elif low.startswith("set-cookie"):
            cookie_dropped = True
    if cookie_dropped:
        ex.event("egress.header_dropped", anomaly=False, name="set-cookie")
    return headers


NAMES = ["Date", "ETag", "etag", "Content-Type", "content-TYPE", "Content-Encoding", "Set-Cookie", "set-cookie2",
         "X-RateLimit-Remaining", "x-pagination-page", "Server", "Keep-Alive", "X-Request-Id", "x_request_id",
         "Link", "Connection", "X-Egress-Contract", "Age", "x-ratelimit-" + "a" * 80, "X-" + "b" * 90, "Transfer-Encoding"]
TOKENS = ["keep-alive", "close", "ETag", "etag", "x_request_id", "X-Request-Id", "content-type", "Set-Cookie",
          "x-ratelimit-" + "a" * 80, "", " Date "]


@given(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(["a", "1", "text/html", ""])), max_size=12),
       st.lists(st.lists(st.sampled_from(TOKENS), max_size=3).map(", ".join), max_size=2))
@hsettings(max_examples=400, deadline=None)
def test_the_memo_answers_as_the_loop_did(pairs, connection):
    answer = Answer(pairs + [("Connection", value) for value in connection])
    for _ in range(2):  # the first pass fills the memo, the second reads it
        old_ex, new_ex = Exchange("GET"), Exchange("GET")
        assert list(forwarded_headers(answer, new_ex).items()) == list(old_forwarded_headers(answer, old_ex).items())
        assert [(e.name, e.attrs) for e in new_ex.events] == [(e.name, e.attrs) for e in old_ex.events]
    for memo in (respond._MEMO, respond._NAMED):
        assert all(len(name) <= respond._MEMO_NAME for name in memo) and len(memo) <= respond._MEMO_SIZE


def test_the_memos_are_bounded():
    for i in range(respond._MEMO_SIZE + 10):
        forwarded_headers(Answer([(f"X-Unknown-{i}", "v"), ("Connection", f"x-unknown-{i}")]), Exchange("GET"))
    assert len(respond._MEMO) <= respond._MEMO_SIZE and len(respond._NAMED) <= respond._MEMO_SIZE
    # past the bound a name is still judged, only not kept
    assert list(forwarded_headers(Answer([("X-Request-ID-not-memoised", "v"), ("ETag", "e"), ("Age", "1"),
                                          ("Connection", "Age")]), Exchange("GET")).items()) == [("ETag", "e")]


# --- build_response: the answer's headers and body ----------------------------------------------

BODY = b'{"id": "ch_1"}'
BUILT = [
    # id, provider headers, wire body, decoded body, Accept-Encoding, (forwarded headers, body sent)
    ("identity", [("Server", "nginx"), ("Content-Type", "application/json"), ("Content-Length", "14"),
                  ("Connection", "keep-alive"), ("ETag", "e")], BODY, None, "gzip",
     ([("Content-Type", "application/json"), ("ETag", "e"), ("X-Egress-Contract", "valid"),
       ("Content-Length", "14")], BODY)),
    ("identity-field-dropped", [("Content-Encoding", "identity"), ("Date", "d")], BODY, None, None,
     ([("Date", "d"), ("X-Egress-Contract", "valid"), ("Content-Length", "14")], BODY)),
    ("gzip-to-a-caller-that-accepts-it", [("Content-Encoding", "GZIP"), ("Date", "d")], gzip.compress(BODY, mtime=0),
     BODY, "br, gzip", ([("Date", "d"), ("Content-Encoding", "gzip"), ("X-Egress-Contract", "valid"),
                         ("Content-Length", str(len(gzip.compress(BODY, mtime=0))))], gzip.compress(BODY, mtime=0))),
    ("gzip-decoded-for-a-caller-that-does-not", [("Content-Encoding", "gzip"), ("Date", "d")],
     gzip.compress(BODY, mtime=0), BODY, "br", ([("Date", "d"), ("X-Egress-Contract", "valid"),
                                                 ("Content-Length", "14")], BODY)),
]


@pytest.mark.parametrize("copied", [False, True], ids=["headers-taken", "headers-copied"])
@pytest.mark.parametrize("case", BUILT, ids=[c[0] for c in BUILT])
def test_build_response(case, copied, monkeypatch):
    _, pairs, wire, decoded, accept, (expected, sent) = case
    if copied:  # an aiohttp without StreamResponse's `_real_headers` gets them copied: the same answer
        monkeypatch.setattr(respond, "_REAL_HEADERS", False)
    resp = UpstreamResponse(200, CIMultiDictProxy(CIMultiDict(pairs)), wire, URL("https://api.example/v1/x"))
    budget = InflightBudget(1 << 20)
    hold = budget.hold()
    hold.grow(len(decoded or wire))
    ex = Exchange("GET")
    ex.contract = "valid"
    answer = build_response(resp, Checked(decoded or wire, decoded is not None, hold), ex, accept)
    assert (answer.status, list(answer.headers.items()), answer.body) == (200, expected, sent)
    assert answer.content_length == len(sent)
    assert budget.in_use == min(len(sent), len(decoded or wire))  # never more than what is sent


# --- an answer without content by rule (HEAD, 304): the provider's length, or none --------------

BODILESS = [
    # id, method, status, provider's Content-Length values, its Content-Encoding, Accept-Encoding, length sent
    ("head", "HEAD", 200, ["1234"], None, None, "1234"),
    ("head-zero", "HEAD", 200, ["0"], None, None, "0"),
    ("head-none", "HEAD", 200, [], None, None, None),
    ("head-19-digits", "HEAD", 200, ["1" * 19], None, None, "1" * 19),
    ("head-20-digits", "HEAD", 200, ["1" * 20], None, None, None),
    ("head-not-a-number", "HEAD", 200, ["12a"], None, None, None),
    ("head-signed", "HEAD", 200, ["+12"], None, None, None),
    ("head-wide-digits", "HEAD", 200, ["\uff11\uff12"], None, None, None),  # isdigit, not ASCII
    ("head-superscript", "HEAD", 200, ["\u00b2"], None, None, None),
    ("head-spaces-around", "HEAD", 200, [" 12 "], None, None, "12"),
    ("head-two-fields", "HEAD", 200, ["12", "12"], None, None, None),
    ("head-coded-accepted", "HEAD", 200, ["99"], "gzip", "gzip", "99"),
    ("head-coded-refused", "HEAD", 200, ["99"], "gzip", "identity", None),
    ("head-coded-no-accept-header", "HEAD", 200, ["99"], "gzip", None, None),
    ("head-of-a-404", "HEAD", 404, ["321"], None, None, "321"),
    ("get-304", "GET", 304, ["77"], None, None, "77"),  # (aiohttp's writer then drops it for a 304)
]


@pytest.mark.parametrize("case", BODILESS, ids=[c[0] for c in BODILESS])
def test_a_bodiless_answer_keeps_the_providers_length(case):
    _, method, status, lengths, coding, accept, want = case
    pairs = [("Content-Type", "application/octet-stream")] + [("Content-Length", v) for v in lengths]
    if coding:
        pairs.append(("Content-Encoding", coding))
    resp = UpstreamResponse(status, CIMultiDictProxy(CIMultiDict(pairs)), b"", URL("https://api.example/v1/x"))
    ex = Exchange(method)
    # the empty body is not decoded (Checked.encoded false), as check.decode gives it
    answer = build_response(resp, Checked(b"", False, None), ex, accept)
    assert answer.headers.getall("Content-Length", []) == ([want] if want is not None else [])
    assert answer.headers.get("Content-Encoding") == (coding if want is not None and coding else None)
    assert answer.body == b""


def test_a_get_answer_still_carries_its_own_body_length():
    """Only HEAD and 304 keep the provider's length: a GET's is the body egress sends."""
    pairs = [("Content-Type", "application/json"), ("Content-Length", "999")]
    resp = UpstreamResponse(200, CIMultiDictProxy(CIMultiDict(pairs)), BODY, URL("https://api.example/v1/x"))
    answer = build_response(resp, Checked(BODY, False, None), Exchange("GET"), None)
    assert answer.headers.getall("Content-Length") == [str(len(BODY))]
