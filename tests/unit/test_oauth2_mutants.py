"""OAuth2 client credentials (credentials/oauth2.py), held exactly: what a token answer must
look like, when a cached token stops being used, when it is renewed, how the IdP is spared
during an outage (the backoff sequence), and what the token request carries.

A real token endpoint (an aiohttp app on 127.0.0.1, port 0) answers what each test tells it;
time is a settable clock handed to `TokenSource`, so every boundary is hit exactly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path

import pytest

from egress.config import settings_from_dict
from egress.credentials.oauth2 import TokenError, TokenSource, parse_token_answer, token_endpoint
from egress.errors import CredentialUnavailable
from tests.fake_idp import ScriptedIdP

SECRET = "client-secret-MARKER"
T0 = 1000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def idp():
    """A token endpoint answering what each test sets (tests/fake_idp.ScriptedIdP)."""
    async with ScriptedIdP() as i:
        yield i


def upstream(token_url: str, tmp_path: Path | None = None, secret: str = SECRET, over: dict | None = None,
             **oauth):
    oauth = {"token_url": token_url, "client_id": "egress-client", **oauth}
    if "client_secret_file" not in oauth:
        oauth["client_secret"] = "${S}"
    settings = settings_from_dict({"upstreams": [{
        "name": "partner", "url": "http://127.0.0.1:9/v1", "allow_private_addresses": True,
        "timeout": {"connect": 3.0}, "credential": {"header": "Authorization", "oauth2": oauth}, **(over or {})}]},
        base_dir=tmp_path or Path("."), environ={"S": secret})
    return settings.upstreams[0]


@pytest.fixture
async def sources():
    made = []

    def make(up, clock):
        s = TokenSource(up, clock=clock)
        made.append(s)
        return s

    yield make
    for s in made:
        await s.close()


def failures(caplog) -> list[dict]:
    return [r.fields for r in caplog.records if r.getMessage() == "oauth2 token fetch failed"]


async def settle(source) -> None:
    """Let a background renewal (if one was started) finish."""
    for _ in range(100):
        await asyncio.sleep(0.01)
        if source._inflight is None:
            return


# ------------------------------------------------------------------ the token answer

ANSWERS = [  # id, answer body, (token, expires_in) or the TokenError text egress logs
    ("minimal", {"access_token": "t"}, ("t", 300.0)),
    ("bearer-any-case", {"access_token": "t", "token_type": "BeArEr", "expires_in": 60}, ("t", 60.0)),
    ("expires-in-float", {"access_token": "t", "expires_in": 0.5}, ("t", 0.5)),
    ("expires-in-digit-string", {"access_token": "t", "expires_in": "120"}, ("t", 120.0)),
    ("expires-in-one-day", {"access_token": "t", "expires_in": 86400}, ("t", 86400.0)),
    ("expires-in-capped-to-a-day", {"access_token": "t", "expires_in": 86401}, ("t", 86400.0)),
    ("expires-in-digit-string-capped", {"access_token": "t", "expires_in": "86401"}, ("t", 86400.0)),
    ("expires-in-nine-digit-string", {"access_token": "t", "expires_in": "000000060"}, ("t", 60.0)),
    ("expires-in-5000-digit-string", {"access_token": "t", "expires_in": "9" * 5000}, ("t", 86400.0)),
    ("expires-in-leading-zeros-past-nine-digits", {"access_token": "t", "expires_in": "0" * 12 + "60"}, ("t", 60.0)),
    ("expires-in-ten-digit-string", {"access_token": "t", "expires_in": "1000000000"}, ("t", 86400.0)),
    ("token-of-16384-chars", {"access_token": "a" * 16384}, ("a" * 16384, 300.0)),
    ("token-with-spaces", {"access_token": "a b"}, ("a b", 300.0)),
    ("not-json", b"<html>tok</html>", "answer is not JSON"),
    ("json-array", [{"access_token": "t"}], "answer is not a JSON object"),
    ("no-access-token", {"token_type": "bearer"}, "answer has no usable access_token"),
    ("access-token-empty", {"access_token": ""}, "answer has no usable access_token"),
    ("access-token-number", {"access_token": 5}, "answer has no usable access_token"),
    ("token-of-16385-chars", {"access_token": "a" * 16385}, "answer has no usable access_token"),
    ("token-with-newline", {"access_token": "a\r\nX-Injected: 1"}, "answer has no usable access_token"),
    ("token-not-ascii", {"access_token": "tök"}, "answer has no usable access_token"),
    ("token-type-mac", {"access_token": "t", "token_type": "mac"}, "token_type is not bearer"),
    ("token-type-number", {"access_token": "t", "token_type": 1}, "token_type is not bearer"),
    ("expires-in-zero", {"access_token": "t", "expires_in": 0}, "expires_in is not a positive number"),
    ("expires-in-negative", {"access_token": "t", "expires_in": -5}, "expires_in is not a positive number"),
    ("expires-in-true", {"access_token": "t", "expires_in": True}, "expires_in is not a positive number"),
    ("expires-in-superscript-digit", {"access_token": "t", "expires_in": "\u00b2"}, "expires_in is not a positive number"),
    ("expires-in-zero-string", {"access_token": "t", "expires_in": "0"}, "expires_in is not a positive number"),
    ("expires-in-null", {"access_token": "t", "expires_in": None}, "expires_in is not a positive number"),
    ("expires-in-decimal-string", {"access_token": "t", "expires_in": "1.5"},
     "expires_in is not a positive number"),
]


@pytest.mark.parametrize("answer, expected", [c[1:] for c in ANSWERS], ids=[c[0] for c in ANSWERS])
def test_token_answer(answer, expected):
    body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    if isinstance(expected, str):
        with pytest.raises(TokenError) as err:
            parse_token_answer(body)
        assert str(err.value) == expected
        return
    token, expires_in = parse_token_answer(body)
    assert (token, expires_in) == expected and type(expires_in) is float
    assert "tok" not in repr(token) and repr(token) == "Secret('***')"


def test_token_endpoint_is_the_upstream_without_credential_redirects_or_a_big_answer():
    up = upstream("http://127.0.0.1:9/oauth/token?tenant=a", timeout=1.5)
    ep = token_endpoint(up)
    assert (ep.name, str(ep.url), ep.credential) == ("partner-token", "http://127.0.0.1:9/oauth/token?tenant=a", None)
    assert (ep.redirects.follow, ep.limits.max_response_bytes) == (False, 65536)
    assert (ep.timeout.connect, ep.timeout.total) == (1.5, 1.5)          # min(upstream's 3.0, oauth2's 1.5)
    assert token_endpoint(upstream("http://127.0.0.1:9/t", timeout=5.0)).timeout.connect == 3.0
    assert ep.allow_private_addresses is True                            # the upstream's address guard


# ------------------------------------------------------------------ expiry and renewal

EXPIRY = [  # id, expires_in, the last instant the token is still used (after T0)
    ("long-token-loses-its-last-second", 60, 59.0),
    ("short-token-loses-its-last-tenth", 5, 4.5),
]


@pytest.mark.parametrize("expires_in, valid_for", [c[1:] for c in EXPIRY], ids=[c[0] for c in EXPIRY])
async def test_a_token_is_not_used_in_its_last_second_or_tenth(idp, sources, expires_in, valid_for):
    idp.doc = {"expires_in": expires_in}
    clock = Clock()
    source = sources(upstream(idp.url, refresh_at=1.0), clock)
    assert await source.token() == "tok-1"
    clock.t = T0 + valid_for - 0.001
    assert await source.token() == "tok-1" and idp.hits == 1
    clock.t = T0 + valid_for                      # expired now: the next request waits for a new one
    assert await source.token() == "tok-2" and idp.hits == 2 and source.fetches == 2


async def test_renewal_starts_at_refresh_at_in_the_background_once(idp, sources):
    clock = Clock()
    source = sources(upstream(idp.url, refresh_at=0.5), clock)
    assert await source.token() == "tok-1"
    clock.t = T0 + 29.999
    assert await source.token() == "tok-1"
    await settle(source)
    assert idp.hits == 1, "no renewal before refresh_at"
    idp.delay = 0.2
    clock.t = T0 + 30.0
    assert [await source.token() for _ in range(5)] == ["tok-1"] * 5, "requests do not wait for the renewal"
    await settle(source)
    assert idp.hits == 2, "one renewal however many requests saw it due"
    assert await source.token() == "tok-2"


async def test_a_token_that_expired_while_it_was_fetched_is_not_used(idp, sources):
    idp.delay = 0.2
    clock = Clock()
    source = sources(upstream(idp.url), clock)
    waiting = asyncio.create_task(source.token())
    while idp.hits == 0:
        await asyncio.sleep(0.01)
    clock.t = T0 + 59.0                           # exactly when the token (expires_in 60) stops being used
    with pytest.raises(CredentialUnavailable) as err:
        await waiting
    assert err.value.reason == "credential_unavailable"


async def test_concurrent_first_requests_share_one_fetch(idp, sources):
    idp.delay = 0.1
    source = sources(upstream(idp.url), Clock())
    assert await asyncio.gather(*(source.token() for _ in range(10))) == ["tok-1"] * 10
    assert idp.hits == 1


# ------------------------------------------------------------------ outage: the backoff

async def test_failed_fetches_back_off_doubling_to_ten_seconds(idp, sources, caplog):
    caplog.set_level(logging.WARNING, logger="egress")
    idp.status = 500
    clock = Clock()
    source = sources(upstream(idp.url), clock)
    at, expected_hits = 0.0, 0
    for backoff in (0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0):
        clock.t = T0 + at
        with pytest.raises(CredentialUnavailable):
            await source.token()
        expected_hits += 1
        assert idp.hits == expected_hits
        clock.t = T0 + at + backoff - 0.001       # within the backoff: refused without asking the IdP
        with pytest.raises(CredentialUnavailable) as err:
            await source.token()
        assert err.value.reason == "credential_unavailable" and idp.hits == expected_hits
        at += backoff
    assert [f["retry_in"] for f in failures(caplog)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert {(f["error"], f["token_cached"], f["upstream"]) for f in failures(caplog)} == {
        ("status 500", False, "partner")}


async def test_a_failed_renewal_keeps_the_token_and_retries_after_the_backoff(idp, sources, caplog):
    caplog.set_level(logging.WARNING, logger="egress")
    clock = Clock()
    source = sources(upstream(idp.url, refresh_at=0.5), clock)
    assert await source.token() == "tok-1"
    idp.status = 500
    clock.t = T0 + 30.0
    assert await source.token() == "tok-1"
    await settle(source)
    assert idp.hits == 2 and failures(caplog)[-1]["token_cached"] is True
    clock.t = T0 + 30.499
    assert await source.token() == "tok-1"
    await settle(source)
    assert idp.hits == 2, "not renewed again within the backoff"
    idp.status = 200
    clock.t = T0 + 30.5
    assert await source.token() == "tok-1"
    await settle(source)
    assert idp.hits == 3 and await source.token() == "tok-3"


async def test_a_success_resets_the_backoff(idp, sources, caplog):
    caplog.set_level(logging.WARNING, logger="egress")
    clock = Clock()
    source = sources(upstream(idp.url), clock)
    idp.status = 500
    with pytest.raises(CredentialUnavailable):
        await source.token()                     # backoff 0.5, next 1.0
    idp.status = 200
    clock.t = T0 + 0.5
    assert await source.token() == "tok-2"
    source.invalidate("tok-2")
    idp.status = 500
    clock.t = T0 + 1.0
    with pytest.raises(CredentialUnavailable):
        await source.token()
    assert [f["retry_in"] for f in failures(caplog)] == [0.5, 0.5]
    clock.t = T0 + 1.5                            # the reset backoff (0.5) has passed: asked again
    with pytest.raises(CredentialUnavailable):
        await source.token()
    assert idp.hits == 4


# ------------------------------------------------------------------ invalidate, close

async def test_invalidate_drops_only_the_cached_token(idp, sources):
    source = sources(upstream(idp.url), Clock())
    assert await source.token() == "tok-1"
    source.invalidate("tok-0")
    assert await source.token() == "tok-1" and idp.hits == 1
    source.invalidate("tok-1")
    assert await source.token() == "tok-2" and idp.hits == 2


async def test_close_cancels_a_fetch_in_flight(idp):
    idp.delay = 0.5
    source = TokenSource(upstream(idp.url), clock=Clock())
    waiting = asyncio.create_task(source.token())
    while idp.hits == 0:
        await asyncio.sleep(0.01)
    await source.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting


# ------------------------------------------------------------------ the token request

REQUESTS = [  # id, oauth2 settings, form expected, Basic credentials expected (None: in the form)
    ("basic-minimal", {}, {"grant_type": ["client_credentials"]}, "egress-client:" + SECRET),
    ("basic-scope-and-audience", {"scope": "a b", "audience": "https://api"},
     {"grant_type": ["client_credentials"], "scope": ["a b"], "audience": ["https://api"]},
     "egress-client:" + SECRET),
    ("basic-parts-form-urlencoded", {"client_id": "id:x/y"}, {"grant_type": ["client_credentials"]},
     "id%3Ax%2Fy:" + SECRET),
    ("post", {"auth_method": "client_secret_post"},
     {"grant_type": ["client_credentials"], "client_id": ["egress-client"], "client_secret": [SECRET]}, None),
]


@pytest.mark.parametrize("oauth, form, basic", [c[1:] for c in REQUESTS], ids=[c[0] for c in REQUESTS])
async def test_the_token_request(idp, sources, oauth, form, basic):
    from urllib.parse import parse_qs
    source = sources(upstream(idp.url + "?tenant=a", **oauth), Clock())
    assert await source.token() == "tok-1"
    seen = idp.requests[0]
    assert (seen.method, seen.path_qs) == ("POST", "/oauth/token?tenant=a")
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.headers["Accept"] == "application/json"
    assert parse_qs(seen.body.decode()) == form
    auth = seen.headers.get("Authorization")
    if basic is None:
        assert auth is None
    else:
        assert auth.startswith("Basic ") and base64.b64decode(auth[6:]).decode() == basic


async def test_token_requests_share_one_pooled_connection(idp, sources):
    clock = Clock()
    source = sources(upstream(idp.url), clock)
    await source.token()
    source.invalidate("tok-1")
    await source.token()
    assert idp.hits == 2 and idp.peers[0] == idp.peers[1]


FAILED = [  # id, how the IdP answers, what egress logs
    ("status-201", {"status": 201}, "status 201"),
    ("redirect-not-followed", {"status": 302, "raw": b""}, "status 302"),
    ("answer-of-64-KiB-and-a-byte", {"raw": b'{"access_token": "t"}'.ljust(65537)}, "response_too_large"),
    ("too-slow", {"delay": 1.0}, "upstream_timeout"),
]


@pytest.mark.parametrize("answer, why", [c[1:] for c in FAILED], ids=[c[0] for c in FAILED])
async def test_a_failed_fetch_is_logged_by_kind(idp, sources, caplog, answer, why):
    caplog.set_level(logging.WARNING, logger="egress")
    for k, v in answer.items():
        setattr(idp, k, v)
    source = sources(upstream(idp.url, timeout=0.3), Clock())
    with pytest.raises(CredentialUnavailable):
        await source.token()
    assert [f["error"] for f in failures(caplog)] == [why]


async def test_an_unreadable_client_secret_file_fails_the_fetch_before_any_post(idp, sources, caplog,
                                                                                tmp_path):
    caplog.set_level(logging.WARNING, logger="egress")
    secret = tmp_path / "client_secret"
    secret.write_text(SECRET)
    up = upstream(idp.url, tmp_path, client_secret_file=str(secret))
    secret.unlink()
    source = sources(up, Clock())
    with pytest.raises(CredentialUnavailable):
        await source.token()
    assert [f["error"] for f in failures(caplog)] == ["client_secret_file unreadable"] and idp.hits == 0


async def test_the_client_secret_file_is_what_is_presented(idp, sources, tmp_path):
    secret = tmp_path / "client_secret"
    secret.write_text("from-the-file\n")
    source = sources(upstream(idp.url, tmp_path, client_secret_file=str(secret)), Clock())
    await source.token()
    auth = idp.requests[0].headers["Authorization"]
    assert base64.b64decode(auth[6:]).decode() == "egress-client:from-the-file"


async def test_an_answer_of_exactly_64_kib_is_read(idp, sources):
    idp.raw = b'{"access_token": "t-64k"}'.ljust(65536)
    source = sources(upstream(idp.url), Clock())
    assert await source.token() == "t-64k"


async def test_a_clock_starting_at_zero_fetches_at_once(idp, sources):
    source = sources(upstream(idp.url), Clock(0.0))
    assert await source.token() == "tok-1" and idp.hits == 1


async def test_a_closed_source_gives_no_token_and_logs_only_the_failure_type(idp, caplog):
    caplog.set_level(logging.WARNING, logger="egress")
    source = TokenSource(upstream(idp.url), clock=Clock())
    assert await source.token() == "tok-1"
    await source.close()
    source.invalidate("tok-1")
    with pytest.raises(CredentialUnavailable):
        await source.token()
    assert [f["error"] for f in failures(caplog)] == ["AssertionError"] and idp.hits == 1


async def test_the_token_endpoint_never_follows_the_upstreams_redirects(idp, sources, caplog):
    caplog.set_level(logging.WARNING, logger="egress")
    idp.status, idp.raw = 302, b""
    source = sources(upstream(idp.url, over={"redirects": {"follow": True}}), Clock())
    with pytest.raises(CredentialUnavailable):
        await source.token()
    assert [f["error"] for f in failures(caplog)] == ["status 302"] and idp.hits == 1


async def test_a_secret_with_reserved_characters_is_form_urlencoded_in_basic(idp, sources):
    source = sources(upstream(idp.url, secret="a/b:c%d"), Clock())
    await source.token()
    auth = idp.requests[0].headers["Authorization"]
    assert base64.b64decode(auth[6:]).decode() == "egress-client:a%2Fb%3Ac%25d"


async def test_after_a_success_a_dropped_token_is_fetched_at_once(idp, sources):
    clock = Clock(0.0)
    source = sources(upstream(idp.url), clock)
    assert await source.token() == "tok-1"
    source.invalidate("tok-1")
    clock.t = 0.5
    assert await source.token() == "tok-2" and idp.hits == 2
