"""Admin port authentication: `admin_token` on every /admin/* path (constant-time compare);
/healthz, /readyz and /metrics stay open; the token is never logged."""

import asyncio
import logging

import pytest

from tests.conftest import base_config

TOKEN = "admin-token-MARKER-0123456789"


@pytest.fixture
async def guarded(proxy, provider):
    fake = await provider()
    doc = base_config([{"name": "pay", "url": fake.url + "/v1", "allow_private_addresses": True}],
                      admin_token="${ADMIN_TOKEN}")
    return await proxy(doc, environ={"ADMIN_TOKEN": TOKEN})


async def ask(handle, method, path, auth=None):
    headers = {"Authorization": auth} if auth is not None else {}
    async with handle.session.request(method, handle.admin_url + path, headers=headers) as resp:
        await resp.read()
        return resp.status, resp.headers.get("X-Egress-Error")


AUTH_CASES = [  # (id, method, path, Authorization, expected status, expected reason)
    ("healthz_open", "GET", "/healthz", None, 200, None),
    ("readyz_open", "GET", "/readyz", None, 200, None),
    ("metrics_open", "GET", "/metrics", None, 200, None),
    ("inventory_without_token", "GET", "/admin/inventory", None, 401, "admin_unauthenticated"),
    ("inventory_wrong_token", "GET", "/admin/inventory", "Bearer not-the-token", 401, "admin_unauthenticated"),
    ("inventory_token_prefix_only", "GET", "/admin/inventory", f"Bearer {TOKEN[:-1]}", 401, "admin_unauthenticated"),
    ("inventory_basic_scheme", "GET", "/admin/inventory", f"Basic {TOKEN}", 401, "admin_unauthenticated"),
    ("inventory_with_token", "GET", "/admin/inventory", f"Bearer {TOKEN}", 200, None),
    ("scheme_case_insensitive", "GET", "/admin/inventory", f"bearer {TOKEN}", 200, None),
    ("reload_without_token", "POST", "/admin/reload", None, 401, "admin_unauthenticated"),
    ("suspend_without_token", "POST", "/admin/upstreams/pay/suspend", None, 401, "admin_unauthenticated"),
    ("breakers_without_token", "GET", "/admin/breakers", None, 401, "admin_unauthenticated"),
    ("unknown_path_without_token", "GET", "/admin/nope", None, 401, "admin_unauthenticated"),
    ("unknown_path_with_token", "GET", "/admin/nope", f"Bearer {TOKEN}", 404, None),
    ("dot_segments_without_token", "GET", "/healthz/../admin/inventory", None, 401, "admin_unauthenticated"),
]


@pytest.mark.parametrize("case, method, path, auth, status, reason", AUTH_CASES, ids=[c[0] for c in AUTH_CASES])
async def test_admin_token_enforced(guarded, caplog, case, method, path, auth, status, reason):
    caplog.set_level(logging.INFO, logger="egress")
    assert await ask(guarded, method, path, auth) == (status, reason)
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert TOKEN not in logged and "not-the-token" not in logged
    if reason:
        assert "admin request refused" in logged


async def test_without_a_token_on_loopback_admin_stays_open(proxy, provider):
    fake = await provider()
    handle = await proxy(base_config([{"name": "pay", "url": fake.url, "allow_private_addresses": True}]))
    assert await ask(handle, "GET", "/admin/inventory") == (200, None)


async def test_admin_token_file_rotates(proxy, provider, tmp_path):
    fake = await provider()
    token_file = tmp_path / "admin-token"
    token_file.write_text("first-admin-token-0123456789\n")
    doc = base_config([{"name": "pay", "url": fake.url, "allow_private_addresses": True}],
                      admin_token_file=str(token_file))
    handle = await proxy(doc)
    assert await ask(handle, "GET", "/admin/inventory", "Bearer first-admin-token-0123456789") == (200, None)
    token_file.write_text("second-admin-token-0123456789\n")
    await asyncio.sleep(1.1)
    assert (await ask(handle, "GET", "/admin/inventory", "Bearer first-admin-token-0123456789"))[0] == 401
    assert await ask(handle, "GET", "/admin/inventory", "Bearer second-admin-token-0123456789") == (200, None)


@pytest.mark.parametrize("token_from, status", [
    ("nothing", 1), ("env", 0), ("file", 0), ("wrong_env", 1),
], ids=["no_token_refused", "env_token", "token_file", "wrong_token_refused"])
async def test_inventory_cli_sends_the_admin_token(guarded, tmp_path, monkeypatch, capsys, token_from, status):
    from egress.cli import main
    monkeypatch.delenv("EGRESS_ADMIN_TOKEN", raising=False)
    args = ["inventory", "--admin", guarded.admin_url]
    if token_from == "env":
        monkeypatch.setenv("EGRESS_ADMIN_TOKEN", TOKEN)
    elif token_from == "wrong_env":
        monkeypatch.setenv("EGRESS_ADMIN_TOKEN", "wrong-token-0123456789")
    elif token_from == "file":
        (tmp_path / "token").write_text(TOKEN + "\n")
        args += ["--admin-token-file", str(tmp_path / "token")]
    guarded.state.suspensions.change("upstream", "pay", suspended=True, reason="SEC-1 breach", by="alice")
    assert await asyncio.to_thread(main, args) == status
    out, err = capsys.readouterr()
    assert ("401" in err) is (status == 1)
    if status == 0:
        assert "suspended (kill switch)" in out and "SEC-1 breach" in out
    assert TOKEN not in out + err
