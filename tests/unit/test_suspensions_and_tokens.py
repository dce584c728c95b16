"""Pure parts of the kill switch (records, last change wins across replicas) and of the OAuth2
token answer (RFC 6749 5.1), called directly."""

import pytest

from egress.credentials.oauth2 import DEFAULT_EXPIRES_IN, TokenError, parse_token_answer
from egress.errors import CallerSuspended, UpstreamSuspended
from egress.suspensions import Suspensions, clean_reason


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_check_refuses_with_the_reason():
    s = Suspensions(clock=Clock())
    s.check("pay", "checkout")
    s.change("upstream", "pay", suspended=True, reason="compromised", by="admin_token")
    s.change("caller", "billing", suspended=True, reason="leaked", by="admin_token")
    with pytest.raises(UpstreamSuspended) as up:
        s.check("pay", "checkout")
    with pytest.raises(CallerSuspended) as caller:
        s.check("ship", "billing")
    assert (up.value.status, up.value.reason) == (503, "upstream_suspended")
    assert (caller.value.status, caller.value.reason) == (403, "caller_suspended")
    s.check("ship", "checkout")
    s.check("ship", None)


REMOTE_CASES = [  # (id, local change at, remote record, suspended afterwards)
    ("newer_remote_suspends", None, {"suspended": True, "reason": "r", "by": "b", "at": 1001.0}, True),
    ("newer_remote_resumes", 1000.0, {"suspended": False, "reason": "r", "by": "b", "at": 1001.0}, False),
    ("older_remote_resume_ignored", 1002.0, {"suspended": False, "reason": "r", "by": "b", "at": 1001.0}, True),
    ("malformed_ignored", None, {"suspended": True}, False),
    ("not_a_dict_ignored", None, "suspended", False),
    ("at_not_a_number_ignored", None, {"suspended": True, "at": "soon"}, False),
]


@pytest.mark.parametrize("case, local_at, remote, suspended", REMOTE_CASES, ids=[c[0] for c in REMOTE_CASES])
def test_the_later_change_wins(case, local_at, remote, suspended):
    clock = Clock()
    s = Suspensions(clock=clock)
    if local_at is not None:
        clock.now = local_at
        s.change("upstream", "pay", suspended=True, reason="local", by="admin_token")
    s._on_remote("upstream:pay", remote, None, False)
    assert (s.suspended("upstream", "pay") is not None) is suspended


def test_unknown_targets_from_the_store_are_ignored():
    s = Suspensions(clock=Clock())
    s._on_remote("breaker:pay", {"suspended": True, "at": 1.0, "reason": "", "by": ""}, None, False)
    s._on_remote("upstream:", {"suspended": True, "at": 1.0, "reason": "", "by": ""}, None, False)
    assert s.active() == []


def test_snapshot_keeps_resumes_as_records_without_expiry():
    s = Suspensions(clock=Clock())
    s.change("upstream", "pay", suspended=True, reason="x", by="b")
    s.change("upstream", "pay", suspended=False, reason="y", by="b")
    (key, value, ttl), = s._snapshot()
    assert key == "upstream:pay" and value["suspended"] is False and ttl is None
    assert value["at"] > 1000.0, "a change in the same clock tick still counts as later"


@pytest.mark.parametrize("text, expected", [
    ("partner compromised", "partner compromised"), ("  x\n\ty ", "x  y"), ("", None), (" \n", None),
    (5, None), (None, None), ("a" * 500, "a" * 200),
], ids=["plain", "control_chars", "empty", "blank", "number", "none", "too_long"])
def test_clean_reason(text, expected):
    assert clean_reason(text) == expected


TOKEN_CASES = [  # (id, answer, token or the TokenError message)
    ("minimal", b'{"access_token": "t1"}', ("t1", DEFAULT_EXPIRES_IN)),
    ("bearer_any_case", b'{"access_token": "t1", "token_type": "bEaReR", "expires_in": 30}', ("t1", 30.0)),
    ("expires_in_as_digits", b'{"access_token": "t1", "expires_in": "120"}', ("t1", 120.0)),
    ("expires_in_capped", b'{"access_token": "t1", "expires_in": 99999999}', ("t1", 86400.0)),
    ("not_json", b"<html>", "answer is not JSON"),
    ("array", b"[]", "answer is not a JSON object"),
    ("no_token", b'{"token_type": "bearer"}', "answer has no usable access_token"),
    ("empty_token", b'{"access_token": ""}', "answer has no usable access_token"),
    ("token_with_newline", b'{"access_token": "a\\r\\nX-Evil: 1"}', "answer has no usable access_token"),
    ("token_not_ascii", '{"access_token": "t\u00e9"}'.encode(), "answer has no usable access_token"),
    ("token_huge", b'{"access_token": "' + b"a" * 20000 + b'"}', "answer has no usable access_token"),
    ("mac_token", b'{"access_token": "t1", "token_type": "mac"}', "token_type is not bearer"),
    ("expires_in_zero", b'{"access_token": "t1", "expires_in": 0}', "expires_in is not a positive number"),
    ("expires_in_bool", b'{"access_token": "t1", "expires_in": true}', "expires_in is not a positive number"),
    ("expires_in_text", b'{"access_token": "t1", "expires_in": "soon"}', "expires_in is not a positive number"),
]


@pytest.mark.parametrize("case, body, expected", TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_token_answer(case, body, expected):
    if isinstance(expected, tuple):
        assert parse_token_answer(body) == expected
    else:
        with pytest.raises(TokenError) as info:
            parse_token_answer(body)
        assert str(info.value) == expected
