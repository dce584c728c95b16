"""Absolute-form targets whose port or host cannot be parsed (issue 19): refused, never an
internal error, and nothing reaches a provider.  aiohttp's request parser refuses the
unparseable ones itself (a plain 400, before egress sees them); the router refuses them too
(`tests/unit/test_routes_edges.py`: yarl parses a port lazily, and a port over 65535 once escaped
`Router.resolve` as a ValueError), so a change of parser cannot turn them into a 500."""

from __future__ import annotations

import json

import pytest

from tests.hostile.test_caller_raw import exchange, pair, reason_of, statuses  # noqa: F401  (pair: fixture)

CASES = [
    # id, request line, status, egress reason (None: refused by the HTTP parser, before egress)
    ("port-over-65535", "GET http://127.0.0.1:99999/v1/x HTTP/1.1", 400, None),
    ("port-of-letters", "GET http://127.0.0.1:8x/v1/x HTTP/1.1", 400, None),
    ("no-host", "GET http:///v1/x HTTP/1.1", 400, None),
    ("user-without-password", "GET http://user@127.0.0.1/v1/x HTTP/1.1", 403, "destination_not_allowed"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_unparseable_absolute_targets_are_refused(case, pair):  # noqa: F811
    _, line, status, reason = case
    p, pay, ledger = pair
    raw = (line + "\r\nHost: egress\r\nX-Egress-Caller: checkout\r\nConnection: close\r\n\r\n").encode()
    data = await exchange(p.running.data_port, raw)
    assert statuses(data) == [status], data[:300]
    assert reason_of(data) == reason
    if reason is not None:
        assert json.loads(data.partition(b"\r\n\r\n")[2])["reason"] == reason
    assert pay.hits == 0 and ledger.hits == 0
