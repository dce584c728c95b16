"""`credential.value_file`: a Kubernetes Secret volume rotated by symlink swap, picked up within
seconds, without a restart and without a failed request."""

import asyncio
import logging
import os

from aiohttp import web

from tests.conftest import base_config


def write_volume(root, value: str, version: int) -> None:
    """What the kubelet does: a new ..<timestamp> dir, then ..data swapped atomically."""
    data = root / f"..2026_12_01_10_00_{version:02d}"
    data.mkdir()
    (data / "api-key").write_text(value)
    os.symlink(data.name, root / "..data_tmp")
    os.replace(root / "..data_tmp", root / "..data")
    if not (root / "api-key").is_symlink():
        os.symlink("..data/api-key", root / "api-key")


async def echo_key(request):
    return web.json_response({"key": request.headers.get("X-Api-Key")})


def doc(provider, path, **cred):
    return base_config([{"name": "pay", "url": provider.url + "/v1", "allow_private_addresses": True,
                         "credential": {"header": "X-Api-Key", "value_file": str(path), **cred}}])


async def test_rotation_by_symlink_swap_without_a_failed_request(proxy, provider, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="egress")
    volume = tmp_path / "secret"
    volume.mkdir()
    write_volume(volume, "key-one-MARKER\n", 1)
    fake = await provider(echo_key)
    handle = await proxy(doc(fake, volume / "api-key", prefix="k="))
    seen, statuses = [], []

    async def traffic(stop: asyncio.Event):
        while not stop.is_set():
            async with handle.request("GET", "/pay/x") as resp:
                statuses.append(resp.status)
                seen.append((await resp.json())["key"])
            await asyncio.sleep(0.01)

    stop = asyncio.Event()
    task = asyncio.create_task(traffic(stop))
    await asyncio.sleep(0.2)
    write_volume(volume, "key-two-MARKER\n", 2)
    rotated_at = asyncio.get_running_loop().time()
    while seen[-1] != "k=key-two-MARKER":
        assert asyncio.get_running_loop().time() - rotated_at < 3, "rotation not seen within 3 s"
        await asyncio.sleep(0.02)
    stop.set()
    await task
    assert set(statuses) == {200}, "no request failed during the swap"
    assert set(seen) == {"k=key-one-MARKER", "k=key-two-MARKER"}
    assert all(a <= b for a, b in zip([s.endswith("two-MARKER") for s in seen],
                                      [s.endswith("two-MARKER") for s in seen][1:])), "never back to the old"
    text = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "credential file changed" in text and "MARKER" not in text


async def test_a_vanished_file_keeps_the_last_value(proxy, provider, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="egress")
    path = tmp_path / "key"
    path.write_text("still-good-MARKER")
    fake = await provider(echo_key)
    handle = await proxy(doc(fake, path))
    async with handle.request("GET", "/pay/x") as resp:
        assert (await resp.json())["key"] == "still-good-MARKER"
    path.unlink()
    await asyncio.sleep(1.1)
    async with handle.request("GET", "/pay/x") as resp:
        assert resp.status == 200 and (await resp.json())["key"] == "still-good-MARKER"
    warnings = [r for r in caplog.records if r.getMessage().startswith("credential file unreadable")]
    assert len(warnings) == 1 and warnings[0].fields["error"] == "FileNotFoundError"


async def test_a_file_never_readable_is_503_credential_unavailable(proxy, provider, tmp_path):
    path = tmp_path / "key"
    path.write_text("loaded-at-start-MARKER")
    fake = await provider(echo_key)
    handle = await proxy(doc(fake, path))
    path.unlink()                     # gone before the first request read it
    async with handle.request("GET", "/pay/x") as resp:
        body = await resp.read()
        assert (resp.status, resp.headers["X-Egress-Error"]) == (503, "credential_unavailable")
    assert fake.hits == 0 and b"MARKER" not in body
