"""The emulator's Entra ID, driven only through the unmodified azure-identity credentials (sync and aio)."""

from __future__ import annotations

import argparse
import json
import re
import ssl
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from azure.appconfiguration import AzureAppConfigurationClient, ConfigurationSetting
from azure.appconfiguration.provider.aio import load
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential, WorkloadIdentityCredential
from azure.identity import aio as identity_aio
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from appconfig_sync.emulator import identity
from appconfig_sync.emulator.identity import TokenIssuer
from appconfig_sync.emulator.server import EmulatorServer
from appconfig_sync.emulator.tls import ensure_tls

pytestmark = pytest.mark.emulator

APPCONFIG = "https://appconfig.azure.com"
SCOPE = APPCONFIG + "/.default"
SP_ID, SP_SECRET = "11111111-0000-0000-0000-000000000001", "sp-secret-value"
WI_ID, WI_JWKS_ID = "22222222-0000-0000-0000-000000000001", "22222222-0000-0000-0000-000000000002"
MI_ID = "33333333-0000-0000-0000-000000000001"
KUBE_ISSUER = "https://kubernetes.default.svc.cluster.local"
SA_SUBJECT = "system:serviceaccount:appconfig-sync:operator"


@dataclass
class Emulator:
    server: EmulatorServer
    origin: str
    ca: str
    issuer: TokenIssuer
    sa_key: rsa.RSAPrivateKey  # plays the kube-apiserver's service-account signing key


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """HTTPS emulator (data plane + Entra ID) with one identity of each kind and one key-value."""
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = tmp_path / "sa-jwks.json"
    jwks.write_text(json.dumps({"keys": [dict(RSAAlgorithm.to_jwk(sa_key.public_key(), as_dict=True),
                                              kid="sa-key", use="sig", alg="RS256")]}))
    issuer = TokenIssuer()
    issuer.add_client_secret(SP_ID, SP_SECRET)
    issuer.add_federated_credential(WI_ID, KUBE_ISSUER, SA_SUBJECT)
    issuer.add_federated_credential(WI_JWKS_ID, KUBE_ISSUER, SA_SUBJECT, jwks=jwks)
    issuer.add_managed_identity(None)
    issuer.add_managed_identity(MI_ID)
    tls = ensure_tls(tmp_path / "tls")
    with EmulatorServer(tls=tls, issuer=issuer) as server:
        with AzureAppConfigurationClient.from_connection_string(
            server.connection_string, connection_verify=str(tls.ca_cert)
        ) as client:
            client.set_configuration_setting(ConfigurationSetting(key="App:Greeting", value="hello"))
        yield Emulator(server, server.endpoint, str(tls.ca_cert), issuer, sa_key)


@pytest.fixture
def authority(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", emulator.origin)
    return emulator


def _service_account_token(key: rsa.RSAPrivateKey, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": KUBE_ISSUER, "sub": SA_SUBJECT, "aud": ["api://AzureADTokenExchange"], "iat": now,
              "nbf": now, "exp": now + 3600}
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "sa-key"})


def _workload_env(monkeypatch: pytest.MonkeyPatch, emulator: Emulator, tmp_path: Path, client_id: str,
                  assertion: str) -> None:
    token_file = tmp_path / "sa-token"
    token_file.write_text(assertion)
    monkeypatch.setenv("AZURE_TENANT_ID", emulator.issuer.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", client_id)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


# ---- service principal (client secret) ----

def test_client_secret_credential_sync(authority: Emulator) -> None:
    credential = ClientSecretCredential(authority.issuer.tenant_id, SP_ID, SP_SECRET,
                                        disable_instance_discovery=True, connection_verify=authority.ca)
    token = credential.get_token(SCOPE)
    assert authority.issuer.verify(token.token, APPCONFIG)
    assert authority.issuer.verify(token.token, APPCONFIG + "/")
    assert not authority.issuer.verify(token.token, "https://vault.azure.net")
    claims = _claims(token.token)
    assert claims["iss"] == f"{authority.origin}/{authority.issuer.tenant_id}/v2.0"
    assert (claims["aud"], claims["appid"], claims["tid"]) == (APPCONFIG, SP_ID, authority.issuer.tenant_id)
    assert claims["sub"] == claims["oid"]


async def test_client_secret_credential_aio(authority: Emulator) -> None:
    async with identity_aio.ClientSecretCredential(authority.issuer.tenant_id, SP_ID, SP_SECRET,
                                                   connection_verify=authority.ca) as credential:
        token = await credential.get_token("https://vault.azure.net/.default")
    assert authority.issuer.verify(token.token, "https://vault.azure.net")
    assert token.expires_on > time.time() + 3000


def test_wrong_client_secret_is_refused_sync(authority: Emulator) -> None:
    credential = ClientSecretCredential(authority.issuer.tenant_id, SP_ID, "not-the-secret",
                                        disable_instance_discovery=True, connection_verify=authority.ca)
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215: Invalid client secret") as raised:
        credential.get_token(SCOPE)
    assert "not-the-secret" not in str(raised.value)


async def test_wrong_client_secret_is_refused_aio(authority: Emulator) -> None:
    async with identity_aio.ClientSecretCredential(authority.issuer.tenant_id, SP_ID, "not-the-secret",
                                                   connection_verify=authority.ca) as credential:
        with pytest.raises(ClientAuthenticationError, match=r"\(invalid_client\) AADSTS7000215") as raised:
            await credential.get_token(SCOPE)
    assert "not-the-secret" not in str(raised.value)


async def test_unknown_client_and_wrong_tenant_are_refused(authority: Emulator) -> None:
    async with identity_aio.ClientSecretCredential(authority.issuer.tenant_id, "unknown-app", SP_SECRET,
                                                   connection_verify=authority.ca) as credential:
        with pytest.raises(ClientAuthenticationError, match="AADSTS700016: Application with identifier 'unknown-app'"):
            await credential.get_token(SCOPE)
    async with identity_aio.ClientSecretCredential("other-tenant", SP_ID, SP_SECRET,
                                                   connection_verify=authority.ca) as credential:
        with pytest.raises(ClientAuthenticationError, match="AADSTS90002: Tenant 'other-tenant' not found"):
            await credential.get_token(SCOPE)


def test_requests_ca_bundle_is_trusted_by_sync_credentials(authority: Emulator,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # requests reads REQUESTS_CA_BUNDLE at request time; aiohttp has no such variable (see the docs).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", authority.ca)
    credential = ClientSecretCredential(authority.issuer.tenant_id, SP_ID, SP_SECRET, disable_instance_discovery=True)
    token = credential.get_token(SCOPE)
    assert authority.issuer.verify(token.token, APPCONFIG)


# ---- workload identity (federated service-account token) ----

@pytest.mark.parametrize("client_id", [WI_ID, WI_JWKS_ID])
def test_workload_identity_credential_sync(authority: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path, client_id: str) -> None:
    _workload_env(monkeypatch, authority, tmp_path, client_id, _service_account_token(authority.sa_key))
    credential = WorkloadIdentityCredential(connection_verify=authority.ca)
    token = credential.get_token(SCOPE)
    assert authority.issuer.verify(token.token, APPCONFIG)
    assert _claims(token.token)["appid"] == client_id


async def test_workload_identity_credential_aio(authority: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    _workload_env(monkeypatch, authority, tmp_path, WI_JWKS_ID, _service_account_token(authority.sa_key))
    async with identity_aio.WorkloadIdentityCredential(connection_verify=authority.ca) as credential:
        token = await credential.get_token(SCOPE)
    assert authority.issuer.verify(token.token, APPCONFIG)


@pytest.mark.parametrize(
    ("client_id", "overrides", "error"),
    [
        (WI_ID, {"sub": "system:serviceaccount:other:sa"}, "AADSTS700213: .* subject 'system:serviceaccount:other:sa'"),
        (WI_ID, {"iss": "https://elsewhere.test"}, "AADSTS700211: .* issuer 'https://elsewhere.test'"),
        (WI_ID, {"aud": ["https://kubernetes.default.svc"]}, "AADSTS700212: .* audience"),
        (WI_ID, {"iat": 1, "nbf": 1, "exp": 2}, "AADSTS700024: Client assertion is not within its valid time range"),
        (WI_JWKS_ID, {"signed_by_another_key": True}, "AADSTS700027: Client assertion failed signature validation"),
    ],
)
async def test_bad_federated_assertion_is_refused(authority: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path, client_id: str, overrides: dict[str, Any],
                                                  error: str) -> None:
    key = authority.sa_key
    if overrides.pop("signed_by_another_key", False):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _workload_env(monkeypatch, authority, tmp_path, client_id, _service_account_token(key, **overrides))
    async with identity_aio.WorkloadIdentityCredential(connection_verify=authority.ca) as credential:
        with pytest.raises(ClientAuthenticationError, match=error):
            await credential.get_token(SCOPE)


# ---- managed identity ----

def _managed_identity_env(monkeypatch: pytest.MonkeyPatch, emulator: Emulator, style: str) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_TENANT_ID", "IDENTITY_ENDPOINT",
                 "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)  # any of these would make ManagedIdentityCredential pick another flow
    if style == "app_service":
        monkeypatch.setenv("IDENTITY_ENDPOINT", emulator.origin + "/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", emulator.issuer.identity_header)
    else:
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emulator.origin)


@pytest.fixture(params=["app_service", "imds"])
def managed_identity_env(request: pytest.FixtureRequest, emulator: Emulator,
                         monkeypatch: pytest.MonkeyPatch) -> Emulator:
    _managed_identity_env(monkeypatch, emulator, request.param)
    return emulator


@pytest.mark.parametrize("client_id", [None, MI_ID])
def test_managed_identity_credential_sync(managed_identity_env: Emulator, client_id: str | None) -> None:
    emulator = managed_identity_env
    credential = ManagedIdentityCredential(client_id=client_id, connection_verify=emulator.ca)
    token = credential.get_token(SCOPE)
    assert emulator.issuer.verify(token.token, APPCONFIG)
    assert _claims(token.token)["appid"] == (client_id or emulator.issuer.system_assigned_client_id)


@pytest.mark.parametrize("client_id", [None, MI_ID])
async def test_managed_identity_credential_aio(managed_identity_env: Emulator, client_id: str | None) -> None:
    emulator = managed_identity_env
    async with identity_aio.ManagedIdentityCredential(client_id=client_id, connection_verify=emulator.ca) as credential:
        token = await credential.get_token("https://vault.azure.net/.default")
    assert emulator.issuer.verify(token.token, "https://vault.azure.net")
    assert token.expires_on > time.time() + 3000


async def test_unregistered_managed_identity_is_refused(managed_identity_env: Emulator) -> None:
    emulator = managed_identity_env
    async with identity_aio.ManagedIdentityCredential(client_id="not-registered",
                                                      connection_verify=emulator.ca) as credential:
        with pytest.raises(ClientAuthenticationError, match="'not-registered' is not registered"):
            await credential.get_token(SCOPE)


async def test_app_service_endpoint_checks_the_identity_header(emulator: Emulator,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator.origin + "/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "guessed")
    async with identity_aio.ManagedIdentityCredential(connection_verify=emulator.ca) as credential:
        with pytest.raises(ClientAuthenticationError, match="X-IDENTITY-HEADER does not match"):
            await credential.get_token(SCOPE)


# ---- the data plane accepts these tokens, and only these ----

def _aio_credential(flow: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
                    tmp_path: Path) -> AsyncTokenCredential:
    if flow == "client_secret":
        return identity_aio.ClientSecretCredential(emulator.issuer.tenant_id, SP_ID, SP_SECRET,
                                                   connection_verify=emulator.ca)
    if flow == "workload_identity":
        _workload_env(monkeypatch, emulator, tmp_path, WI_JWKS_ID, _service_account_token(emulator.sa_key))
        return identity_aio.WorkloadIdentityCredential(connection_verify=emulator.ca)
    _managed_identity_env(monkeypatch, emulator, flow)
    return identity_aio.ManagedIdentityCredential(client_id=MI_ID, connection_verify=emulator.ca)


@pytest.mark.parametrize("flow", ["client_secret", "workload_identity", "app_service", "imds"])
async def test_provider_loads_over_https_with_each_aio_credential(authority: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path, flow: str) -> None:
    async with _aio_credential(flow, authority, monkeypatch, tmp_path) as credential:
        async with await load(endpoint=authority.origin, credential=credential,
                              connection_verify=authority.ca) as config:
            assert config["App:Greeting"] == "hello"
    assert authority.server.request_log.count(route="kv", status=200) == 1


class _FixedToken:
    """Hands the real client a token we chose: how a forged or stale token reaches the data plane."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


def test_forged_and_expired_tokens_are_refused_with_401(authority: Emulator) -> None:
    credential = ClientSecretCredential(authority.issuer.tenant_id, SP_ID, SP_SECRET,
                                        disable_instance_discovery=True, connection_verify=authority.ca)
    genuine = credential.get_token(SCOPE).token
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(_claims(genuine), forger, algorithm="RS256", headers=jwt.get_unverified_header(genuine))
    authority.issuer.token_lifetime = 1
    expired = ClientSecretCredential(authority.issuer.tenant_id, SP_ID, SP_SECRET, disable_instance_discovery=True,
                                     connection_verify=authority.ca).get_token(SCOPE).token
    authority.issuer.token_lifetime = 3600
    time.sleep(2.1)
    # Another emulator process signs with its own key, so its tokens are foreign here.
    foreign = TokenIssuer(tenant_id=authority.issuer.tenant_id)
    assert not foreign.verify(genuine, APPCONFIG)
    assert not authority.issuer.verify("not a jwt", APPCONFIG)

    def read(token: str) -> str | None:
        with AzureAppConfigurationClient(authority.origin, _FixedToken(token),  # type: ignore[arg-type]
                                         connection_verify=authority.ca, retry_total=0) as client:
            return client.get_configuration_setting("App:Greeting").value

    assert read(genuine) == "hello"
    for token in (forged, expired):
        with pytest.raises(ClientAuthenticationError):
            read(token)
    assert authority.server.request_log.count(route="kv-item", status=401) == 2


def test_openid_document_lets_a_generic_validator_check_tokens(authority: Emulator) -> None:
    credential = ClientSecretCredential(authority.issuer.tenant_id, SP_ID, SP_SECRET,
                                        disable_instance_discovery=True, connection_verify=authority.ca)
    token = credential.get_token(SCOPE).token
    context = ssl.create_default_context(cafile=authority.ca)
    url = f"{authority.origin}/{authority.issuer.tenant_id}/v2.0/.well-known/openid-configuration"
    with urllib.request.urlopen(url, context=context) as response:
        document = json.load(response)
    key = jwt.PyJWKClient(document["jwks_uri"], ssl_context=context).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=APPCONFIG, issuer=document["issuer"])
    assert claims["appid"] == SP_ID


# ---- command line ----

def test_from_args_registers_every_identity(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks.write_text(json.dumps({"keys": [RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)]}))
    parser = argparse.ArgumentParser()
    identity.add_arguments(parser)
    args = parser.parse_args([
        "--tenant-id", "t1", "--token-lifetime", "600", "--identity-header", "hdr",
        "--service-principal", "app:se:cret", "--federated-credential", f"wi,{KUBE_ISSUER},{SA_SUBJECT},{jwks}",
        "--managed-identity", "--managed-identity", MI_ID,
    ])
    issuer = TokenIssuer.from_args(args)
    assert (issuer.tenant_id, issuer.token_lifetime, issuer.identity_header) == ("t1", 600, "hdr")
    assert issuer._client_secrets == {"app": "se:cret"}
    assert issuer._federated["wi"][0].jwks is not None
    assert issuer._managed == {None, MI_ID}


@pytest.mark.parametrize("argv", [
    ["--service-principal", "no-secret"],
    ["--federated-credential", "only,two"],
    ["--token-lifetime", "0"],
])
def test_bad_flags_are_rejected(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    identity.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    assert "expected" in capsys.readouterr().err


def test_unreadable_jwks_names_the_credential_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="client 'wi': cannot load JWKS file .*kubectl get --raw /openid/v1/jwks"):
        TokenIssuer().add_federated_credential("wi", KUBE_ISSUER, SA_SUBJECT, jwks=tmp_path / "missing.json")


# ---- bad input on the wire ----

@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        ('{"grant_type": "client_credentials"}', 400, "AADSTS900144: .* 'grant_type'"),
        ({"grant_type": "password", "client_id": SP_ID}, 400, "AADSTS70003"),
        ({"grant_type": "client_credentials", "client_id": SP_ID, "client_secret": SP_SECRET,
          "scope": "https://appconfig.azure.com/kv.read"}, 400, "AADSTS1002012"),
        ({"grant_type": "client_credentials", "client_id": SP_ID, "scope": SCOPE}, 401, "AADSTS7000218"),
        ({"grant_type": "client_credentials", "client_id": WI_ID, "scope": SCOPE, "client_assertion": "x.y.z",
          "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, 401, "AADSTS50027"),
    ],
)
def test_malformed_token_requests_get_entra_errors(emulator: Emulator, data: Any, status: int, error: str) -> None:
    url = f"{emulator.origin}/{emulator.issuer.tenant_id}/oauth2/v2.0/token"
    response = requests.post(url, data=data, verify=emulator.ca, timeout=10)
    assert response.status_code == status
    assert re.search(error, response.json()["error_description"])


def test_unknown_tenant_and_missing_metadata_header_are_refused(emulator: Emulator) -> None:
    document = requests.get(f"{emulator.origin}/other/v2.0/.well-known/openid-configuration",
                            verify=emulator.ca, timeout=10)
    assert (document.status_code, document.json()["error"]) == (400, "invalid_tenant")
    imds = requests.get(f"{emulator.origin}/metadata/identity/oauth2/token",
                        params={"api-version": "2018-02-01", "resource": APPCONFIG}, verify=emulator.ca, timeout=10)
    assert (imds.status_code, imds.json()["error_description"]) == (400, "Required metadata header not specified")
