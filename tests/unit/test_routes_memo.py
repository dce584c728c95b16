"""Router's per-request fast paths give the general answers: parse_host's bounded memo of Host
values, _names_upstream for a host no upstream has, Route as an immutable tuple."""

from __future__ import annotations

import pytest

from egress import routes
from egress.errors import BadRequest
from tests.unit.test_routes import DENIED, OK, ROUTER

HOSTS = ["egress", "egress:8080", "API.Payments.Example:443", "api.payments.example:", "[::1]:8080", "[::1]",
         "127.0.0.1:8443", " crm.example ", "", "a:65535", "a:0", "xn--bcher-kva.example:80"]
MALFORMED = ["a:65536", "a:99999", "a b", "a:\u0668\u0660", "h\u00e9te", "a:80:80", "[::1", "a:-1", "a:8o"]


@pytest.fixture
def empty_memo(monkeypatch):
    monkeypatch.setattr(routes, "_HOSTS", {})
    return routes._HOSTS


def test_parse_host_memo_answers_what_the_parse_answers(empty_memo):
    for value in HOSTS:
        parsed = routes._parse_host(value)
        assert routes.parse_host(value) == parsed  # parsed, stored
        assert empty_memo[value] == parsed
        assert routes.parse_host(value) == parsed  # from the memo
    assert routes.parse_host("API.Payments.Example:443") == ("api.payments.example", 443)
    empty_memo["planted.example"] = ("read-from-the-memo", 1)  # a stored answer is read, not parsed again
    assert routes.parse_host("planted.example") == ("read-from-the-memo", 1)
    assert routes.parse_host("[::1]:8080") == ("::1", 8080)


def test_a_malformed_host_is_refused_every_time_and_never_stored(empty_memo):
    for value in MALFORMED:
        for _ in range(2):
            with pytest.raises(BadRequest, match="Host header is malformed"):
                routes.parse_host(value)
    assert empty_memo == {}


def test_the_memo_is_bounded_and_answers_past_its_bound(empty_memo, monkeypatch):
    monkeypatch.setattr(routes, "_HOSTS_MAX", 8)
    for i in range(50):
        assert routes.parse_host(f"h{i}.example:{i + 1}") == (f"h{i}.example", i + 1)
    assert len(empty_memo) == 8 and "h8.example:9" not in empty_memo
    assert routes.parse_host("h40.example:41") == ("h40.example", 41)  # not stored, still parsed


def test_names_upstream_for_unknown_and_known_hosts():
    assert ROUTER._names_upstream("egress", None) is False  # no upstream on egress's own host
    assert ROUTER._names_upstream("egress", 80) is False
    assert ROUTER._names_upstream("api.payments.example", None) is True
    assert ROUTER._names_upstream("api.payments.example", 443) is True  # the upstream's port
    assert ROUTER._names_upstream("api.payments.example", 80) is True  # a plain-HTTP Host of it
    assert ROUTER._names_upstream("api.payments.example", 8080) is False  # egress's port: the prefix form
    assert ROUTER._names_upstream("127.0.0.1", 8443) is True and ROUTER._names_upstream("127.0.0.1", 8080) is False


def test_resolve_twice_gives_equal_immutable_routes():
    for _, method, target, host, *_ in OK:
        first, second = ROUTER.resolve(method, target, host), ROUTER.resolve(method, target, host)
        assert first == second and first.upstream is second.upstream
        with pytest.raises(AttributeError):
            first.path = "/admin"
    for _, method, target, host, exc, words in DENIED:  # the memo changes no refusal
        for _ in range(2):
            with pytest.raises(exc, match=words):
                ROUTER.resolve(method, target, host)
