"""The emulator's CA and serving certificate, checked by real TLS handshakes."""

from __future__ import annotations

import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from appconfig_sync.emulator.tls import TLSMaterial, ensure_tls


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _serve(material: TLSMaterial) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.add_routes([web.get("/", _ok)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=material.server_context())
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[TLSMaterial, int]]:
    material = ensure_tls(tmp_path)
    runner, port = await _serve(material)
    yield material, port
    await runner.cleanup()


def _strict_client(cafile: Path | None) -> ssl.SSLContext:
    # VERIFY_X509_STRICT is the default from Python 3.13 on: the certs must pass it already.
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_client_trusting_the_ca_connects(served: tuple[TLSMaterial, int], host: str) -> None:
    material, port = served
    async with aiohttp.ClientSession() as session:
        async with session.get(f"https://{host}:{port}/", ssl=_strict_client(material.ca_cert)) as response:
            assert await response.text() == "ok"


async def test_client_without_the_ca_is_refused(served: tuple[TLSMaterial, int]) -> None:
    _, port = served
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"https://127.0.0.1:{port}/", ssl=_strict_client(None))


def test_keys_are_private_and_material_is_reused(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path)
    assert stat.S_IMODE(first.key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca-key.pem").stat().st_mode) == 0o600
    before = {path: path.read_bytes() for path in (first.ca_cert, first.cert, first.key)}
    second = ensure_tls(tmp_path)
    assert second == first
    assert {path: path.read_bytes() for path in before} == before


async def test_new_host_reissues_the_serving_cert_under_the_same_ca(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path)
    ca_before, cert_before = first.ca_cert.read_bytes(), first.cert.read_bytes()
    second = ensure_tls(tmp_path, hosts=("127.0.0.1", "localhost", "emulator.test"))
    assert second.ca_cert.read_bytes() == ca_before
    assert second.cert.read_bytes() != cert_before
    runner, port = await _serve(second)
    try:
        client = _strict_client(second.ca_cert)
        async with aiohttp.ClientSession() as session:
            # The new SAN is in the cert: connect by IP but verify against the DNS name.
            async with session.get(f"https://127.0.0.1:{port}/", ssl=client, server_hostname="emulator.test") as r:
                assert r.status == 200
    finally:
        await runner.cleanup()


async def test_given_ca_signs_the_serving_cert(tmp_path: Path) -> None:
    own = ensure_tls(tmp_path / "own-ca")
    given_cert, given_key = tmp_path / "own-ca" / "ca.pem", tmp_path / "own-ca" / "ca-key.pem"
    material = ensure_tls(tmp_path / "served", ca_cert=given_cert, ca_key=given_key)
    assert material.ca_cert == given_cert
    assert not (tmp_path / "served" / "ca.pem").exists()
    runner, port = await _serve(material)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/", ssl=_strict_client(own.ca_cert)) as r:
                assert r.status == 200
    finally:
        await runner.cleanup()


def test_serving_cert_from_another_ca_is_replaced(tmp_path: Path) -> None:
    ensure_tls(tmp_path / "a")
    ensure_tls(tmp_path / "b")
    first = ensure_tls(tmp_path / "served", ca_cert=tmp_path / "a" / "ca.pem", ca_key=tmp_path / "a" / "ca-key.pem")
    before = first.cert.read_bytes()
    ensure_tls(tmp_path / "served", ca_cert=tmp_path / "b" / "ca.pem", ca_key=tmp_path / "b" / "ca-key.pem")
    assert first.cert.read_bytes() != before


def test_half_a_ca_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ca_cert and ca_key go together"):
        ensure_tls(tmp_path, ca_cert=tmp_path / "ca.pem")


def test_mismatched_ca_key_is_an_error(tmp_path: Path) -> None:
    ensure_tls(tmp_path / "a")
    ensure_tls(tmp_path / "b")
    with pytest.raises(ValueError, match="does not belong to certificate"):
        ensure_tls(tmp_path / "served", ca_cert=tmp_path / "a" / "ca.pem", ca_key=tmp_path / "b" / "ca-key.pem")
