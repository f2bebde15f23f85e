"""The emulator's Key Vault, driven through the unmodified SecretClient and the App Configuration provider."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import jwt
import pytest
from azure.appconfiguration import (
    AzureAppConfigurationClient,
    ConfigurationSetting,
    SecretReferenceConfigurationSetting,
)
from azure.appconfiguration.provider import WatchKey
from azure.appconfiguration.provider.aio import load
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.identity import aio as identity_aio
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient
from cryptography.hazmat.primitives.asymmetric import rsa

from appconfig_sync.emulator.identity import TokenIssuer
from appconfig_sync.emulator.keyvault import SecretVault
from appconfig_sync.emulator.server import EmulatorServer
from appconfig_sync.emulator.tls import ensure_tls

pytestmark = pytest.mark.emulator

SP_ID, SP_SECRET = "44444444-0000-0000-0000-000000000001", "kv-test-secret"


@pytest.fixture
def tls_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    """HTTPS emulator with Entra ID and Key Vault; AZURE_AUTHORITY_HOST points the credentials at it."""
    issuer = TokenIssuer()
    issuer.add_client_secret(SP_ID, SP_SECRET)
    vault = SecretVault(issuer)
    with EmulatorServer(tls=ensure_tls(tmp_path / "tls"), issuer=issuer, vault=vault) as server:
        monkeypatch.setenv("AZURE_AUTHORITY_HOST", server.endpoint)
        yield server


def _ca(server: EmulatorServer) -> str:
    assert server.tls is not None
    return str(server.tls.ca_cert)


def _issuer(server: EmulatorServer) -> TokenIssuer:
    assert server.issuer is not None
    return server.issuer


def _vault(server: EmulatorServer) -> SecretVault:
    assert server.vault is not None
    return server.vault


def _credential(server: EmulatorServer) -> identity_aio.ClientSecretCredential:
    return identity_aio.ClientSecretCredential(_issuer(server).tenant_id, SP_ID, SP_SECRET,
                                               connection_verify=_ca(server))


def _vault_config(server: EmulatorServer) -> dict[str, object]:
    # Key Vault clients insist the challenge resource matches the vault's domain (*.vault.azure.net);
    # the emulator lives on 127.0.0.1, so that check is turned off.
    return {"verify_challenge_resource": False, "connection_verify": _ca(server)}


def test_secret_client_gets_a_secret_through_the_challenge(tls_emulator: EmulatorServer) -> None:
    version = _vault(tls_emulator).set_secret("db-password", "hunter2")
    credential = ClientSecretCredential(_issuer(tls_emulator).tenant_id, SP_ID, SP_SECRET,
                                        disable_instance_discovery=True, connection_verify=_ca(tls_emulator))
    client = SecretClient(tls_emulator.endpoint, credential, **_vault_config(tls_emulator))  # type: ignore[arg-type]
    secret = client.get_secret("db-password")
    assert (secret.value, secret.properties.version) == ("hunter2", version)
    assert secret.id == f"{tls_emulator.endpoint}/secrets/db-password/{version}"
    assert client.get_secret("db-password", version).value == "hunter2"
    statuses = [r.status for r in tls_emulator.request_log.records(path_prefix="/secrets/")]
    assert statuses == [401, 200, 200]  # one challenge, then the cached token


async def test_async_secret_client_sets_rotates_and_lists(tls_emulator: EmulatorServer) -> None:
    async with _credential(tls_emulator) as credential, AsyncSecretClient(
        tls_emulator.endpoint, credential, **_vault_config(tls_emulator)  # type: ignore[arg-type]
    ) as client:
        first = await client.set_secret("api-key", "v1", content_type="text/plain", tags={"team": "a"})
        second = await client.set_secret("api-key", "v2")
        assert (await client.get_secret("api-key")).value == "v2"
        old = await client.get_secret("api-key", first.properties.version)
        assert (old.value, old.properties.content_type, old.properties.tags) == ("v1", "text/plain", {"team": "a"})
        versions = [p.version async for p in client.list_properties_of_secret_versions("api-key")]
        assert versions == [first.properties.version, second.properties.version]
        with pytest.raises(ResourceNotFoundError) as missing:
            await client.get_secret("no-such-secret")
        assert missing.value.error is not None and missing.value.error.code == "SecretNotFound"


async def test_challenge_resource_check_needs_turning_off(tls_emulator: EmulatorServer) -> None:
    _vault(tls_emulator).set_secret("s", "v")
    async with _credential(tls_emulator) as credential, AsyncSecretClient(
        tls_emulator.endpoint, credential, connection_verify=_ca(tls_emulator)
    ) as client:
        with pytest.raises(ValueError, match="verify_challenge_resource=False"):
            await client.get_secret("s")


async def test_challenge_and_refusals_on_the_wire(tls_emulator: EmulatorServer) -> None:
    _vault(tls_emulator).set_secret("s", "v")
    issuer = _issuer(tls_emulator)
    url = f"{tls_emulator.endpoint}/secrets/s/?api-version=2025-07-01"
    async with _credential(tls_emulator) as credential:
        vault_token = (await credential.get_token("https://vault.azure.net/.default")).token
        appconfig_token = (await credential.get_token("https://appconfig.azure.com/.default")).token
    forged = jwt.encode(jwt.decode(vault_token, options={"verify_signature": False}),
                        rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256")
    issuer.token_lifetime = 1
    async with _credential(tls_emulator) as credential:
        expired = (await credential.get_token("https://vault.azure.net/.default")).token
    issuer.token_lifetime = 3600
    await asyncio.sleep(2.1)
    ssl_context = ssl.create_default_context(cafile=_ca(tls_emulator))
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=ssl_context) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == (
                f'Bearer authorization="{tls_emulator.endpoint}/{issuer.tenant_id}", '
                'resource="https://vault.azure.net"'
            )
            assert (await response.json())["error"]["code"] == "Unauthorized"
        for token in (appconfig_token, forged, expired):
            async with session.get(url, ssl=ssl_context, headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status == 401
        async with session.get(url, ssl=ssl_context, headers={"Authorization": f"Bearer {vault_token}"}) as response:
            assert (await response.json())["value"] == "v"


async def test_unauthorized_client_cannot_read_secrets(tls_emulator: EmulatorServer) -> None:
    _vault(tls_emulator).set_secret("s", "v")
    async with identity_aio.ClientSecretCredential(
        _issuer(tls_emulator).tenant_id, SP_ID, "wrong", connection_verify=_ca(tls_emulator)
    ) as credential, AsyncSecretClient(
        tls_emulator.endpoint, credential, **_vault_config(tls_emulator)  # type: ignore[arg-type]
    ) as client:
        with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
            await client.get_secret("s")


def _store_reference(server: EmulatorServer, key: str, secret_name: str) -> None:
    client = AzureAppConfigurationClient.from_connection_string(server.connection_string,
                                                                connection_verify=_ca(server))
    with client:
        stored = client.set_configuration_setting(
            SecretReferenceConfigurationSetting(key=key, secret_id=f"{server.endpoint}/secrets/{secret_name}")
        )
        assert stored.content_type == "application/vnd.microsoft.appconfig.keyvaultref+json;charset=utf-8"
        client.set_configuration_setting(ConfigurationSetting(key="Sentinel", value="1"))


async def test_provider_resolves_a_key_vault_reference_and_sees_a_rotation(tls_emulator: EmulatorServer) -> None:
    vault = _vault(tls_emulator)
    vault.set_secret("db-password", "first")
    _store_reference(tls_emulator, "App:DbPassword", "db-password")
    async with _credential(tls_emulator) as credential:
        config = await load(
            endpoint=tls_emulator.endpoint,
            credential=credential,
            connection_verify=_ca(tls_emulator),
            keyvault_credential=credential,
            keyvault_client_configs={tls_emulator.endpoint + "/": _vault_config(tls_emulator)},
            refresh_on=[WatchKey("Sentinel")],
            refresh_interval=1,
            secret_refresh_interval=1,
        )
        async with config:
            assert config["App:DbPassword"] == "first"
            vault.set_secret("db-password", "second")
            await asyncio.sleep(1.1)
            await config.refresh()
            assert config["App:DbPassword"] == "second"
    raw = json.dumps(tls_emulator.request_log.records(path_prefix="/secrets/")[0].to_json())
    assert "first" not in raw and "second" not in raw  # the request log names secrets, never values


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/secrets/ok-name", b"not json", "BadParameter"),
        ("/secrets/ok-name", b'{"content": "no value"}', "BadParameter"),
        ("/secrets/bad_name", b'{"value": "v"}', "BadParameter"),
        ("/secrets/ok-name", json.dumps({"value": "x" * (25 * 1024 + 1)}).encode(), "BadParameter"),
    ],
)
async def test_bad_writes_get_key_vault_errors(tls_emulator: EmulatorServer, path: str, body: bytes,
                                               code: str) -> None:
    async with _credential(tls_emulator) as credential:
        token = (await credential.get_token("https://vault.azure.net/.default")).token
    ssl_context = ssl.create_default_context(cafile=_ca(tls_emulator))
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{tls_emulator.endpoint}{path}?api-version=2025-07-01", data=body, ssl=ssl_context,
                               headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == code
    with pytest.raises(ValueError, match="SecretVault.set_secret: The request URI contains an invalid name"):
        _vault(tls_emulator).set_secret("bad_name", "v")
