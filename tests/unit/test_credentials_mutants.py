"""Credential injection (credentials/__init__.py, static.py) and rotating files (file.py), held
exactly: which header leaves with which value, the event recorded (name, header, kind, never
the value), when a token source is kept across a reload and when it is replaced, the replay
after a partner's 401, and when a credential file is looked at again.

Token endpoints are real aiohttp apps on 127.0.0.1 (port 0); files are real files; time for
FileValue is a settable clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from pathlib import Path

import pytest
from multidict import CIMultiDict

import egress.credentials as credentials_module
from egress.config import settings_from_dict
from egress.credentials import Credentials, inject
from egress.credentials.file import FileValue
from egress.errors import CredentialUnavailable
from egress.exchange import Exchange
from tests.fake_idp import ScriptedIdP
from tests.fakes import tls_server

PARTNER = "partner-value-MARKER"


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def idp():
    """A token endpoint issuing tok-1, tok-2, ... valid 60 s (tests/fake_idp.ScriptedIdP)."""
    async with ScriptedIdP() as fake:
        yield fake


@pytest.fixture
async def creds():
    c = Credentials()
    yield c
    await c.close()


def upstream(credential: dict | None, tmp_path: Path = Path("."), **over):
    doc = {"name": "pay", "url": "http://127.0.0.1:9/v1", "allow_private_addresses": True, **over}
    if credential is not None:
        doc["credential"] = credential
    return settings_from_dict({"upstreams": [doc]}, base_dir=tmp_path, environ={"V": PARTNER}).upstreams[0]


def oauth(idp, **kw) -> dict:
    return {"header": "Authorization",
            "oauth2": {"token_url": idp.url, "client_id": "c", "client_secret": "${V}", **kw}}


def events(ex: Exchange) -> list[tuple]:
    return [(e.name, e.attrs) for e in ex.events]


def caller_headers() -> CIMultiDict:
    return CIMultiDict([("Authorization", "Bearer caller-internal"), ("X-Api-Key", "caller-key"),
                        ("Accept", "application/json")])


# ------------------------------------------------------------------ static values

@pytest.mark.parametrize("header", ["X-Api-Key", "x-api-key"], ids=["same-case", "other-case"])
async def test_static_value_replaces_any_value_of_that_header(creds, header):
    up = upstream({"header": header, "value": "${V}"})
    headers, ex = caller_headers(), Exchange("GET")
    await creds.inject(headers, up, ex)
    assert headers.getall("X-Api-Key") == [PARTNER]
    assert headers["Authorization"] == "Bearer caller-internal" and headers["Accept"] == "application/json"
    assert events(ex) == [("egress.credential_injected", {"header": "x-api-key"})]
    assert ex.anomalous is False, "an injection is not an anomaly"


async def test_no_credential_leaves_the_headers_alone(creds):
    headers, ex = caller_headers(), Exchange("GET")
    await creds.inject(headers, upstream(None), ex)
    assert list(headers.items()) == list(caller_headers().items()) and ex.events == []
    headers = caller_headers()
    inject(headers, upstream(None), ex)
    assert list(headers.items()) == list(caller_headers().items()) and ex.events == []


# ------------------------------------------------------------------ files

@pytest.mark.parametrize("prefix, sent", [(None, "file-MARKER"), ("", "file-MARKER"), ("k=", "k=file-MARKER")],
                         ids=["no-prefix", "empty-prefix", "prefix"])
async def test_file_value_with_its_prefix(creds, tmp_path, prefix, sent):
    (tmp_path / "key").write_text("file-MARKER\n")
    cred = {"header": "X-Api-Key", "value_file": "key"}
    if prefix is not None:
        cred["prefix"] = prefix
    headers, ex = caller_headers(), Exchange("GET")
    await creds.inject(headers, upstream(cred, tmp_path), ex)
    assert headers.getall("X-Api-Key") == [sent]
    assert events(ex) == [("egress.credential_injected", {"header": "x-api-key", "kind": "file"})]
    assert ex.anomalous is False, "an injection is not an anomaly"


async def test_a_file_never_readable_is_credential_unavailable(creds, tmp_path):
    (tmp_path / "key").write_text("file-MARKER")
    up = upstream({"header": "X-Api-Key", "value_file": "key"}, tmp_path)
    (tmp_path / "key").unlink()
    headers, ex = caller_headers(), Exchange("GET")
    with pytest.raises(CredentialUnavailable) as err:
        await creds.inject(headers, up, ex)
    assert err.value.reason == "credential_unavailable" and "MARKER" not in str(err.value)
    assert headers.getall("X-Api-Key") == ["caller-key"] and ex.events == []


# ------------------------------------------------------------------ oauth2 tokens

@pytest.mark.parametrize("prefix, sent", [(None, "Bearer tok-1"), ("", "tok-1"), ("Token ", "Token tok-1")],
                         ids=["default-bearer", "empty-prefix", "other-prefix"])
async def test_oauth2_token_with_its_prefix(creds, idp, prefix, sent):
    cred = oauth(idp)
    if prefix is not None:
        cred["prefix"] = prefix
    headers, ex = caller_headers(), Exchange("GET")
    await creds.inject(headers, upstream(cred), ex)
    assert headers.getall("Authorization") == [sent]
    assert events(ex) == [("egress.credential_injected", {"header": "authorization", "kind": "oauth2"})]
    assert ex.anomalous is False, "an injection is not an anomaly"


RELOADS = [  # id, what the reload changes, whether the cached token survives it
    ("nothing", {}, True),
    ("callers-only", {"callers": ["checkout"]}, True),
    ("total-timeout-only", {"timeout": {"total": 3.0}}, True),
    ("oauth2-scope", {"scope": "write"}, False),
    ("tls-ca-file", {"tls": {"ca_file": "ca2.pem"}}, False),
    ("allowed-addresses", {"allow_private_addresses": ["127.0.0.1/32", "10.0.0.0/8"]}, False),
    ("connect-timeout", {"timeout": {"connect": 1.0}}, False),
]


@pytest.fixture
async def tls_idp(tmp_path):
    ctx, ca_file = tls_server(tmp_path, "127.0.0.1")
    (tmp_path / "ca2.pem").write_bytes(ca_file.read_bytes())  # the same CA under a second name
    async with ScriptedIdP(ssl_context=ctx) as fake:
        yield fake


@pytest.mark.parametrize("change, kept", [c[1:] for c in RELOADS], ids=[c[0] for c in RELOADS])
async def test_a_reload_keeps_the_token_source_only_when_its_inputs_are_unchanged(creds, tls_idp, tmp_path,
                                                                                  change, kept):
    change = dict(change)
    scope = change.pop("scope", None)
    base = {"tls": {"ca_file": "ca.pem"}, "allow_private_addresses": ["127.0.0.1/32"]}
    before = upstream(oauth(tls_idp), tmp_path, **base)
    after = upstream(oauth(tls_idp, **({"scope": scope} if scope else {})), tmp_path, **{**base, **change})
    first = CIMultiDict()
    await creds.inject(first, before, Exchange("GET"))
    again = CIMultiDict()
    await creds.inject(again, before, Exchange("GET"))
    reloaded = CIMultiDict()
    await creds.inject(reloaded, after, Exchange("GET"))
    assert first["Authorization"] == again["Authorization"] == "Bearer tok-1"
    assert reloaded["Authorization"] == ("Bearer tok-1" if kept else "Bearer tok-2")
    assert tls_idp.hits == (1 if kept else 2)
    back = CIMultiDict()                          # and the new generation keeps its own source
    await creds.inject(back, after, Exchange("GET"))
    assert back["Authorization"] == reloaded["Authorization"] and tls_idp.hits == (1 if kept else 2)


async def test_a_replaced_token_source_serves_on_for_a_minute_then_is_closed(creds, idp, monkeypatch):
    loop = asyncio.get_running_loop()
    real_time, offset = loop.time, [0.0]
    monkeypatch.setattr(loop, "time", lambda: real_time() + offset[0])
    before = upstream(oauth(idp))
    await creds.inject(CIMultiDict(), before, Exchange("GET"))
    old = creds._sources["pay"][1]
    await creds.inject(CIMultiDict(), upstream(oauth(idp, scope="write")), Exchange("GET"))
    offset[0] = 59.0
    await asyncio.sleep(0.05)
    assert old._client._session is not None, "still open for the old generation's requests"
    offset[0] = 60.5
    for _ in range(50):
        await asyncio.sleep(0.01)
        if old._client._session is None:
            break
    assert old._client._session is None and old not in creds._retired
    assert credentials_module.RETIRED_CLOSE_AFTER == 60.0


async def test_close_closes_every_token_source_current_and_retired(idp):
    creds = Credentials()
    await creds.inject(CIMultiDict(), upstream(oauth(idp)), Exchange("GET"))
    old = creds._sources["pay"][1]
    await creds.inject(CIMultiDict(), upstream(oauth(idp, scope="write")), Exchange("GET"))
    new = creds._sources["pay"][1]
    await creds.close()
    assert old._client._session is None and new._client._session is None
    assert creds._sources == {} and creds._retired == []


# ------------------------------------------------------------------ the replay after a 401

RENEWALS = [  # id, prefix, what was sent, what the replay carries
    ("default-bearer", None, "Bearer tok-1", "Bearer tok-2"),
    ("empty-prefix", "", "tok-1", "tok-2"),
    ("other-prefix", "Token ", "Token tok-1", "Token tok-2"),
    ("sent-without-the-prefix", None, "tok-1", "Bearer tok-2"),
]


@pytest.mark.parametrize("prefix, sent, replayed", [c[1:] for c in RENEWALS], ids=[c[0] for c in RENEWALS])
async def test_renew_after_401_drops_the_refused_token_and_injects_a_new_one(creds, idp, prefix, sent, replayed):
    cred = oauth(idp)
    if prefix is not None:
        cred["prefix"] = prefix
    up = upstream(cred)
    headers = CIMultiDict()
    await creds.inject(headers, up, Exchange("GET"))
    headers["Authorization"] = sent
    ex = Exchange("GET")
    assert await creds.renew_after_401(headers, up, ex) is True
    assert headers.getall("Authorization") == [replayed] and idp.hits == 2
    assert events(ex) == [("egress.credential_rejected", {"header": "authorization", "kind": "oauth2"}),
                          ("egress.credential_injected", {"header": "authorization", "kind": "oauth2"})]
    assert ex.anomalous is True, "a refused partner credential is an anomaly"


async def test_renew_after_401_keeps_a_token_it_did_not_send(creds, idp):
    up = upstream(oauth(idp))
    headers, ex = CIMultiDict(), Exchange("GET")
    await creds.inject(headers, up, ex)
    headers["Authorization"] = "Bearer tok-0"
    assert await creds.renew_after_401(headers, up, ex) is True
    assert headers["Authorization"] == "Bearer tok-1" and idp.hits == 1


@pytest.mark.parametrize("cred", [None, {"header": "X-Api-Key", "value": "${V}"}], ids=["none", "static"])
async def test_renew_after_401_is_only_for_oauth2(creds, cred):
    headers, ex = caller_headers(), Exchange("GET")
    assert await creds.renew_after_401(headers, upstream(cred), ex) is False
    assert list(headers.items()) == list(caller_headers().items()) and ex.events == []


# ------------------------------------------------------------------ FileValue

def rewrite(path: Path, text: str) -> None:
    """A new file swapped in (new inode), as a rotation does."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(text.encode() if isinstance(text, str) else text)
    os.replace(tmp, path)


def test_file_is_looked_at_again_only_after_check_every(tmp_path):
    path, clock = tmp_path / "key", Clock()
    path.write_text("one\n")
    fv = FileValue(str(path), check_every=2.0, clock=clock)
    assert fv.get() == "one" and fv.generation == 1
    rewrite(path, "two")
    clock.t = 101.999
    assert fv.get() == "one"
    clock.t = 102.0
    assert fv.get() == "two" and fv.generation == 2
    rewrite(path, "three")
    clock.t = 103.999
    assert fv.get() == "two"
    clock.t = 104.0
    assert fv.get() == "three" and fv.generation == 3


def test_default_check_is_every_second(tmp_path):
    path, clock = tmp_path / "key", Clock()
    path.write_text("one")
    fv = FileValue(str(path), clock=clock)
    fv.get()
    rewrite(path, "two")
    clock.t = 100.999
    assert fv.get() == "one"
    clock.t = 101.0
    assert fv.get() == "two"


def test_an_untouched_file_is_not_read_again(tmp_path):
    path, clock = tmp_path / "key", Clock()
    path.write_text("one")
    fv = FileValue(str(path), check_every=0.0, clock=clock)
    for _ in range(3):
        assert fv.get() == "one"
    assert fv.generation == 1


def test_a_file_is_read_up_to_64_kib_and_stripped(tmp_path):
    path = tmp_path / "key"
    path.write_text("  " + "a" * 65534 + "bbbb\n")
    assert FileValue(str(path)).get() == "a" * 65534


OUTAGES = [  # id, what the file becomes, the error logged (by type only)
    ("vanished", None, "FileNotFoundError"),
    ("empty", "", "ValueError"),
    ("whitespace-only", " \n", "ValueError"),
    ("not-utf-8", b"\xff\xfe-MARKER", "UnicodeDecodeError"),
]


@pytest.mark.parametrize("broken, error", [c[1:] for c in OUTAGES], ids=[c[0] for c in OUTAGES])
def test_an_outage_keeps_the_last_value_and_logs_once(tmp_path, caplog, broken, error):
    caplog.set_level(logging.INFO, logger="egress")
    path, clock = tmp_path / "key", Clock()
    path.write_text("good-MARKER")
    fv = FileValue(str(path), check_every=1.0, clock=clock)
    if broken is None:
        path.unlink()
    else:
        rewrite(path, broken)
    for step in (1, 2, 3):
        clock.t = 100.0 + step
        assert fv.get() == "good-MARKER"
    rewrite(path, "good-MARKER")                  # back, same value: readable again, not "changed"
    clock.t = 110.0
    assert fv.get() == "good-MARKER" and fv.generation == 2
    path.unlink()                                  # a second outage is logged again
    clock.t = 120.0
    assert fv.get() == "good-MARKER"
    lines = [(r.levelname, r.getMessage(), r.fields) for r in caplog.records]
    assert lines == [
        ("WARNING", "credential file unreadable; keeping the last value", {"file": str(path), "error": error}),
        ("INFO", "credential file readable again", {"file": str(path)}),
        ("WARNING", "credential file unreadable; keeping the last value",
         {"file": str(path), "error": "FileNotFoundError"}),
    ]


def test_a_changed_value_is_logged_without_the_value(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="egress")
    path, clock = tmp_path / "key", Clock()
    path.write_text("one-MARKER")
    fv = FileValue(str(path), clock=clock)
    rewrite(path, "two-MARKER")
    clock.t = 200.0
    assert fv.get() == "two-MARKER"
    assert [(r.levelname, r.getMessage(), r.fields) for r in caplog.records] == [
        ("INFO", "credential file changed; using the new value", {"file": str(path)})]


def test_a_file_never_readable_has_no_value(tmp_path):
    fv = FileValue(str(tmp_path / "missing"), clock=Clock())
    assert fv.get() is None and fv.generation == 0
    (tmp_path / "missing").write_text("late")
    fv._clock = Clock(200.0)
    assert fv.get() == "late" and fv.generation == 1


def test_a_change_right_after_the_first_read_is_seen_check_every_later(tmp_path):
    path, clock = tmp_path / "key", Clock()
    path.write_text("one")
    fv = FileValue(str(path), check_every=1.0, clock=clock)
    rewrite(path, "two")
    clock.t = 100.999
    assert fv.get() == "one"
    clock.t = 101.0
    assert fv.get() == "two"


async def test_renew_after_401_without_the_header_sent_keeps_the_cached_token(creds, idp):
    up = upstream(oauth(idp))
    await creds.inject(CIMultiDict(), up, Exchange("GET"))
    headers = CIMultiDict()
    assert await creds.renew_after_401(headers, up, Exchange("GET")) is True
    assert headers["Authorization"] == "Bearer tok-1" and idp.hits == 1


class OneNameResolver:
    """Resolves only `idp.test`, to 127.0.0.1 (what a cluster's DNS would do for a partner IdP)."""

    async def resolve(self, host, port=0, family=0):
        import socket
        if host != "idp.test":
            raise OSError(f"unknown host {host}")
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


async def test_the_token_endpoint_is_resolved_with_the_proxys_resolver(idp):
    creds = Credentials(resolver=OneNameResolver())
    try:
        cred = {"header": "Authorization", "oauth2": {"token_url": f"http://idp.test:{idp.port}/token",
                                                      "client_id": "c", "client_secret": "${V}"}}
        headers = CIMultiDict()
        await creds.inject(headers, upstream(cred), Exchange("GET"))
        assert headers["Authorization"] == "Bearer tok-1" and idp.hits == 1
    finally:
        await creds.close()
