"""Hostile statuses, redirects and answer headers: what a provider may make egress pass on.

- an undeclared 2xx/3xx is a contract violation in enforce mode (keyword `status`); an
  undeclared 4xx/5xx passes as `unmatched`;
- every 3xx but 304 gets the redirect policy; a followed hop must match scheme, host AND port
  of an allowed origin, and the credential never follows;
- several differing Content-Type fields are refused;
- answer headers are forwarded by allowlist.
Each named case asserts status and reason (or verdict), and a normal request afterwards works.
"""

from __future__ import annotations

import pytest
import yaml
from aiohttp import web

from tests.conftest import base_config
from tests.hostile.conftest import assert_still_serves, good_upstream, hostile_upstream, read_problem, send_bytes

ERROR = {"type": "object", "required": ["error"]}
CHARGE = {"type": "object", "required": ["id"]}


def contract(tmp_path, responses: dict) -> None:
    ops = {"GET /charges/{id}": {"responses": responses}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"operations": ops}))


def answer(status: int, body: bytes = b'{"id": "ch_1"}', **headers):
    async def handler(request):
        return web.Response(status=status, body=body, headers={"Content-Type": "application/json", **headers})
    return handler


ONLY_200_404 = {"200": {"content_type": "application/json", "schema": CHARGE},
                "404": {"content_type": "application/json", "schema": ERROR}}
WITH_RANGE = {"2XX": {"content_type": "application/json", "schema": CHARGE}}
WITH_DEFAULT = {"200": {"schema": CHARGE}, "default": {"schema": {}}}

STATUSES = [
    # id, contract responses, mode, provider status, status to caller, reason, verdict
    ("declared-200-control", ONLY_200_404, "enforce", 200, 200, None, "valid"),
    ("undeclared-201", ONLY_200_404, "enforce", 201, 502, "contract_violation", "violated"),
    ("undeclared-204", ONLY_200_404, "enforce", 204, 502, "contract_violation", "violated"),
    ("undeclared-299", ONLY_200_404, "enforce", 299, 502, "contract_violation", "violated"),
    ("undeclared-300-no-location", ONLY_200_404, "enforce", 300, 502, "contract_violation", "violated"),
    ("undeclared-201-report-mode", ONLY_200_404, "report", 201, 201, None, "violated"),
    ("undeclared-500-passes-unmatched", ONLY_200_404, "enforce", 500, 500, None, "unmatched"),
    ("undeclared-429-passes-unmatched", ONLY_200_404, "enforce", 429, 429, None, "unmatched"),
    ("declared-404", ONLY_200_404, "enforce", 404, 404, None, "valid"),
    ("range-2XX-covers-201", WITH_RANGE, "enforce", 201, 201, None, "valid"),
    ("default-covers-201", WITH_DEFAULT, "enforce", 201, 201, None, "valid"),
]


@pytest.mark.parametrize("case", STATUSES, ids=[c[0] for c in STATUSES])
async def test_undeclared_status(case, tmp_path, provider, proxy, good):
    name, responses, mode, upstream_status, status, reason, verdict = case
    contract(tmp_path, responses)
    body = b'{"error": {}}' if upstream_status >= 400 else b'{"id": "ch_1"}'
    bad = await provider(answer(upstream_status, body))
    p = await proxy(base_config([hostile_upstream(bad.url, contract="bad.yaml", mode=mode), good_upstream(good.url)],
                                contracts_dir=str(tmp_path)), base_dir=tmp_path)
    events = []
    p.state.observers.append(lambda ex: events.extend(ex.events))
    async with p.request("GET", "/bad/charges/ch_1") as resp:
        assert resp.status == status
        assert resp.headers["X-Egress-Contract"] == verdict
        assert resp.headers.get("X-Egress-Error") == reason
        if reason is not None:
            problem = await read_problem(resp)
            assert [v["keyword"] for v in problem["violations"]] == ["status"]
    names = {e.name: e.attrs for e in events}
    if verdict == "violated":
        assert names["egress.contract_violation"]["keyword"] == "status"
    if verdict == "unmatched":
        assert names["egress.contract_unmatched"]["status"] == upstream_status
        async with p.session.get(p.admin_url + "/metrics") as metrics:  # counted
            assert 'event="egress.contract_unmatched"' in await metrics.text()
    await assert_still_serves(p)


REDIRECTS = [
    # id, status, Location (GOOD = the good upstream's base), status to caller, reason
    ("300-to-metadata", 300, "http://169.254.169.254/latest/meta-data/", 502, "redirect_blocked"),
    ("305-use-proxy-to-metadata", 305, "http://169.254.169.254/", 502, "redirect_blocked"),
    ("306-to-localhost", 306, "http://localhost:1/admin", 502, "redirect_blocked"),
    ("399-unknown-to-file", 399, "file:///etc/passwd", 502, "redirect_blocked"),
    ("300-to-an-allowlisted-upstream-passes", 300, "GOOD/x", 300, None),
    ("304-is-not-a-redirect", 304, "http://169.254.169.254/", 304, None),
]


@pytest.mark.parametrize("case", REDIRECTS, ids=[c[0] for c in REDIRECTS])
async def test_every_3xx_is_a_redirect(case, provider, proxy, good):
    name, upstream_status, location, status, reason = case
    location = location.replace("GOOD", good.url + "/v1")
    bad = await provider(answer(upstream_status, b"", Location=location))
    p = await proxy(base_config([hostile_upstream(bad.url), good_upstream(good.url)]))
    async with p.request("GET", "/bad/x", allow_redirects=False) as resp:
        assert resp.status == status
        assert resp.headers.get("X-Egress-Error") == reason
        if reason is not None:
            assert (await read_problem(resp))["reason"] == reason
    await assert_still_serves(p)


CRED = "Bearer partner-credential-value"
HOPS = [
    # id, where the hop goes ({o} = other provider's port, {u} = the upstream's), allow_hosts, followed
    ("same-host-other-port", "http://127.0.0.1:{o}/v1/y", [], False),
    ("allowed-host-without-port-means-default-port", "http://localhost:{o}/v1/y", ["localhost"], False),
    ("allowed-host-other-port-than-listed", "http://localhost:{o}/v1/y", ["localhost:1"], False),
    ("allowed-host-wrong-scheme", "https://localhost:{o}/v1/y", ["localhost:{o}"], False),
    ("allowed-host-and-port", "http://localhost:{o}/v1/y", ["localhost:{o}"], True),
    ("own-origin-other-path", "http://127.0.0.1:{u}/v1/other", [], True),
]


@pytest.mark.parametrize("case", HOPS, ids=[c[0] for c in HOPS])
async def test_followed_hop_stays_on_allowed_origins(case, provider, proxy, good):
    name, where, allow, followed = case
    other = await provider(answer(200, b'{"landed": true}'))
    hops = []

    async def handler(request):
        if request.path.endswith("/other"):
            return web.json_response({"own": True})
        hops.append(1)
        return web.Response(status=307, headers={"Location": where.format(o=other.port, u=request.url.port)})

    bad = await provider(handler)
    allow = [a.format(o=other.port) for a in allow]
    doc = hostile_upstream(bad.url, redirects={"follow": True, "allow_hosts": allow},
                           credential={"header": "Authorization", "value": CRED})
    p = await proxy(base_config([doc, good_upstream(good.url)]))
    async with p.request("GET", "/bad/x") as resp:
        if followed:
            assert resp.status == 200, await resp.read()
        else:
            assert resp.status == 502 and (await read_problem(resp))["reason"] == "redirect_blocked"
    assert other.hits == (1 if followed and "{o}" in where else 0)
    for seen in other.requests:
        assert "Authorization" not in seen.headers  # the credential never follows to another origin
    assert bad.requests[0].headers["Authorization"] == CRED
    await assert_still_serves(p)


def head(status_line: bytes, *headers: bytes) -> bytes:
    return status_line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def two_content_types(second: bytes):
    return send_bytes(head(b"HTTP/1.1 200 OK", b"Content-Type: application/json", b"Content-Type: " + second,
                           b"Content-Length: 14") + b'{"id": "ch_1"}')


CONTENT_TYPES = [
    # id, second Content-Type, mode, status, reason, Content-Type values the caller sees
    ("json-then-html-enforce", b"text/html", "enforce", 502, "unexpected_content_type", None),
    ("json-then-html-report", b"text/html", "report", 200, None, ["application/json"]),
    ("json-twice-is-one", b"application/json", "enforce", 200, None, ["application/json"]),
]


@pytest.mark.parametrize("case", CONTENT_TYPES, ids=[c[0] for c in CONTENT_TYPES])
async def test_duplicate_content_type(case, tmp_path, raw_provider, proxy, good):
    name, second, mode, status, reason, seen = case
    contract(tmp_path, ONLY_200_404)
    bad = await raw_provider(two_content_types(second))
    p = await proxy(base_config([hostile_upstream(bad.url, contract="bad.yaml", mode=mode), good_upstream(good.url)],
                                contracts_dir=str(tmp_path)), base_dir=tmp_path)
    async with p.request("GET", "/bad/charges/ch_1") as resp:
        assert resp.status == status
        assert resp.headers.get("X-Egress-Error") == reason
        if seen is not None:
            assert resp.headers.getall("Content-Type") == seen
            assert await resp.read() == b'{"id": "ch_1"}'
    await assert_still_serves(p)


DROPPED = {"Alt-Svc": 'h3=":443"; ma=86400', "Refresh": "0; url=https://evil.example/",
           "Clear-Site-Data": '"*"', "Content-Security-Policy": "default-src *",
           "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "true",
           "Strict-Transport-Security": "max-age=31536000", "X-Frame-Options": "DENY",
           "Server-Timing": "db;dur=53", "X-Provider-Internal-Host": "db-7.provider.internal",
           "Permissions-Policy": "camera=*", "Report-To": "{}", "NEL": "{}"}
KEPT = {"X-RateLimit-Remaining": "41", "RateLimit-Reset": "30", "Retry-After": "2", "Link": '<https://x/?p=2>; rel="next"',
        "X-Request-Id": "req_123", "ETag": '"abc"', "Cache-Control": "no-store", "X-Total-Count": "9",
        "Request-Id": "req_9", "Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT"}


async def test_head_answer_carries_no_body(provider, proxy, good):
    """Answers are written in pieces by egress itself: a HEAD still gets no body."""
    bad = await provider(answer(200, b""))
    p = await proxy(base_config([hostile_upstream(bad.url), good_upstream(good.url)]))
    async with p.request("HEAD", "/bad/x") as resp:
        assert resp.status == 200 and await resp.read() == b""
    await assert_still_serves(p)


async def test_answer_headers_are_forwarded_by_allowlist(provider, proxy, good):
    bad = await provider(answer(200, b"{}", **DROPPED, **KEPT, Server="evil/1.0"))
    p = await proxy(base_config([hostile_upstream(bad.url), good_upstream(good.url)]))
    async with p.request("GET", "/bad/x") as resp:
        assert resp.status == 200
        for name in DROPPED:
            assert name not in resp.headers, name
        for name, value in KEPT.items():
            assert resp.headers.get(name) == value, name
        assert resp.headers.get("Server") != "evil/1.0"  # egress's own Server header, if any
    await assert_still_serves(p)
