"""respond.forwarded_headers: which provider headers a caller sees, and the set-cookie event
(named cases over a real CIMultiDict, as aiohttp hands the provider's headers over)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from egress.exchange import Exchange
from egress.respond import forwarded_headers


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
