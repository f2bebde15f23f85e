"""Entra ID auth and Key Vault references, end to end: the operator talks to the emulator over TLS with real
tokens it obtained from the emulator's Entra ID, and resolves Key Vault references into a Secret only."""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from appconfig_sync.objects import SECRET_HASH
from e2e_support import OPERATOR_NAMESPACE, OPERATOR_SA, Kube, put, wait_for
from secure_support import (
    KV_REF_CONTENT_TYPE,
    MI_ID,
    SP_ID,
    SP_SECRET,
    WI_ID,
    WI_OTHER_ID,
    WI_UNTRUSTING_ID,
    Secure,
    leaks,
)

pytestmark = pytest.mark.cluster

TOKEN_AUDIENCE = "api://AzureADTokenExchange"


# ---- helpers ----


def ready(kube: Kube, name: str = "web") -> dict[str, Any]:
    return kube.ready(name) or {}


def wait_ready(kube: Kube, name: str = "web", timeout: float = 30.0) -> dict[str, Any]:
    return wait_for(lambda: ready(kube, name).get("status") == "True" and ready(kube, name),
                    timeout=timeout, what=f"{name} Ready")


def wait_reason(kube: Kube, reason: str, name: str = "web", timeout: float = 45.0) -> dict[str, Any]:
    return wait_for(lambda: ready(kube, name).get("reason") == reason and ready(kube, name),
                    timeout=timeout, what=f"{name} Ready=False {reason}")


def sp_secret(kube: Kube, client_secret: str, name: str = "sp", tenant: str = "", replace: bool = False) -> None:
    body = {
        "metadata": {"name": name},
        "stringData": {"azure_tenant_id": tenant, "azure_client_id": SP_ID, "azure_client_secret": client_secret},
    }
    if replace:
        kube.core.replace_namespaced_secret(name, kube.namespace, body)
    else:
        kube.core.create_namespaced_secret(kube.namespace, body)


def request_refresh(kube: Kube, name: str = "web") -> str:
    """What `kubectl annotate acs web appconfigsync.dev/refresh-requested-at=<now> --overwrite` does."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kube.cluster.kubectl("-n", kube.namespace, "annotate", "acs", name,
                         f"appconfigsync.dev/refresh-requested-at={now}", "--overwrite")
    return now


def secret_data(kube: Kube, name: str) -> dict[str, str] | None:
    try:
        secret = kube.core.read_namespaced_secret(name, kube.namespace)
    except Exception:  # noqa: BLE001 - not there (yet)
        return None
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def secret_deployment(kube: Kube, name: str, secret: str) -> None:
    """A Deployment that reads the target Secret through envFrom."""
    kube.apps.create_namespaced_deployment(
        kube.namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1",
                                             "envFrom": [{"secretRef": {"name": secret}}]}]},
                },
            },
        },
    )


def event_messages(kube: Kube) -> list[str]:
    return [f"{e.reason}: {e.message}" for e in kube.events()]


def sa_token(kube: Kube) -> str:
    """The operator ServiceAccount's projected token, as the AKS workload identity webhook would mount it."""
    return kube.cluster.kubectl(
        "-n", OPERATOR_NAMESPACE, "create", "token", OPERATOR_SA, "--audience", TOKEN_AUDIENCE, "--duration", "1h"
    ).stdout.strip()


# ---- auth modes ----


def test_service_principal_syncs_and_a_wrong_secret_is_authentication_failed(
    kube: Kube, secure: Secure, start_operator
) -> None:
    put(secure.store, "message", "hello")
    put(secure.store, "Sentinel", "1")
    sp_secret(kube, SP_SECRET, tenant=secure.issuer.tenant_id)
    kube.app_sync("web", store={"endpoint": secure.endpoint, "auth": {"servicePrincipalSecretRef": {"name": "sp"}}})
    operator = start_operator(*secure.operator_args(), env=secure.authority_env())

    wait_for(lambda: kube.data("web-config") == {"message": "hello", "Sentinel": "1"}, what="first sync")
    wait_ready(kube)
    log = secure.server.request_log
    assert log.count(route="entra-token", status=200) >= 1, "the operator must get its token from Entra ID"
    assert log.count(route="kv", status=200) >= 1

    # The client secret is rotated in Kubernetes to a wrong one; a reload must fail and keep the old data.
    # The sentinel stays, so only the requested full reload (with fresh credentials) could see the new value.
    sp_secret(kube, "not-the-secret", tenant=secure.issuer.tenant_id, replace=True)
    put(secure.store, "message", "changed")
    request_refresh(kube)
    failed = wait_reason(kube, "AuthenticationFailed")
    assert failed["status"] == "False"
    assert "AADSTS7000215" in failed["message"], failed["message"]
    assert log.count(route="entra-token", status=401) >= 1
    time.sleep(2)
    assert kube.data("web-config") == {"message": "hello", "Sentinel": "1"}, "a failed reload must keep the old data"
    assert any("AuthenticationFailed" in m for m in event_messages(kube))

    # Fixed again: the next reload picks the credentials up and the new data.
    sp_secret(kube, SP_SECRET, tenant=secure.issuer.tenant_id, replace=True)
    request_refresh(kube)
    wait_for(lambda: kube.data("web-config") == {"message": "changed", "Sentinel": "1"}, timeout=45, what="recovery")
    wait_ready(kube)
    for secret in (SP_SECRET, "not-the-secret"):
        assert not leaks(secret, operator.log, event_messages(kube), kube.sync("web"))


def test_workload_identity_default_and_per_object_client_id_and_an_untrusted_token(
    kube: Kube, secure: Secure, start_operator, tmp_path: Path
) -> None:
    issuer_url = kube.cluster.server + "/"  # the API server's --service-account-issuer
    subject = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"
    jwks = tmp_path / "sa-jwks.json"
    jwks.write_text(kube.cluster.kubectl("get", "--raw", "/openid/v1/jwks").stdout)
    # The default identity checks the token's signature against the API server's keys too.
    secure.issuer.add_federated_credential(WI_ID, issuer_url, subject, jwks=jwks)
    secure.issuer.add_federated_credential(WI_OTHER_ID, issuer_url, subject)
    secure.issuer.add_federated_credential(
        WI_UNTRUSTING_ID, issuer_url, f"system:serviceaccount:{kube.namespace}:someone-else")
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(sa_token(kube))

    put(secure.store, "message", "hello")
    put(secure.store, "Sentinel", "1")
    kube.app_sync("web", store={"endpoint": secure.endpoint})  # no auth: the operator pod's workload identity
    kube.app_sync("other", store={"endpoint": secure.endpoint,
                                  "auth": {"workloadIdentity": {"clientId": WI_OTHER_ID}}})
    kube.app_sync("untrusted", store={"endpoint": secure.endpoint,
                                      "auth": {"workloadIdentity": {"clientId": WI_UNTRUSTING_ID}}})
    operator = start_operator(*secure.operator_args(), env={
        **secure.authority_env(),
        "AZURE_TENANT_ID": secure.issuer.tenant_id,
        "AZURE_CLIENT_ID": WI_ID,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
    })

    expected = {"message": "hello", "Sentinel": "1"}
    wait_for(lambda: kube.data("web-config") == expected, what="web synced with the pod's identity")
    wait_for(lambda: kube.data("other-config") == expected, what="other synced with its own client ID")
    wait_ready(kube, "web")
    wait_ready(kube, "other")
    untrusted = wait_reason(kube, "AuthenticationFailed", "untrusted")
    assert "AADSTS700213" in untrusted["message"], untrusted["message"]  # subject not federated with that identity
    assert kube.data("untrusted-config") is None

    # A token the API server did not sign (same claims, another key) is not trusted: the reload fails
    # and the data stays.
    real = token_file.read_text()
    claims = jwt.decode(real, options={"verify_signature": False})
    header = jwt.get_unverified_header(real)
    forged_key = (ec.generate_private_key(ec.SECP256R1()) if header["alg"] == "ES256"
                  else rsa.generate_private_key(public_exponent=65537, key_size=2048))
    token_file.write_text(jwt.encode(claims, forged_key, algorithm=header["alg"], headers={"kid": header.get("kid")}))
    put(secure.store, "message", "changed")  # the sentinel stays: only the requested reload could see it
    request_refresh(kube, "web")
    forged = wait_reason(kube, "AuthenticationFailed", "web")
    assert "AADSTS700027" in forged["message"], forged["message"]
    time.sleep(2)
    assert kube.data("web-config") == expected
    assert "eyJ" not in operator.log, "no token may be logged"


@pytest.mark.parametrize("style", ["app-service", "imds"])
def test_managed_identity_system_and_user_assigned(kube: Kube, secure: Secure, start_operator, style: str) -> None:
    put(secure.store, "message", "hello")
    put(secure.store, "Sentinel", "1")
    kube.app_sync("system", store={"endpoint": secure.endpoint, "auth": {"managedIdentity": {}}})
    kube.app_sync("user", store={"endpoint": secure.endpoint, "auth": {"managedIdentity": {"clientId": MI_ID}}})
    if style == "app-service":
        env = {"IDENTITY_ENDPOINT": f"{secure.endpoint}/msi/token", "IDENTITY_HEADER": secure.issuer.identity_header}
        route = "msi-app-service"
    else:
        env = {"AZURE_POD_IDENTITY_AUTHORITY_HOST": secure.endpoint}
        route = "msi-imds"
    start_operator(*secure.operator_args(), env=env)

    expected = {"message": "hello", "Sentinel": "1"}
    wait_for(lambda: kube.data("system-config") == expected, what="system-assigned identity synced")
    wait_for(lambda: kube.data("user-config") == expected, what="user-assigned identity synced")
    wait_ready(kube, "system")
    wait_ready(kube, "user")
    assert secure.server.request_log.count(route=route, status=200) >= 2, "one token per identity"
    put(secure.store, "message", "changed")
    put(secure.store, "Sentinel", "2")
    wait_for(lambda: kube.data("user-config") == {"message": "changed", "Sentinel": "2"}, what="refresh with a token")


# ---- Key Vault ----


def _keyvault_store(kube: Kube, secure: Secure, value: str) -> None:
    secure.vault.set_secret("db-password", value)
    put(secure.store, "app:db:host", "db.local")
    put(secure.store, "app:db:password", secure.reference("db-password"), content_type=KV_REF_CONTENT_TYPE)
    put(secure.store, "Sentinel", "1")
    sp_secret(kube, SP_SECRET, tenant=secure.issuer.tenant_id)


def test_keyvault_reference_lands_in_the_secret_and_nowhere_else(
    kube: Kube, secure: Secure, start_operator
) -> None:
    value = f"kv-{uuid.uuid4().hex}"
    _keyvault_store(kube, secure, value)
    kube.connection_secret(secure.server.connection_string)  # the store by connection string, over TLS
    kube.app_sync(
        "web",
        trimKeyPrefixes=["app:"],
        target={"configMap": {"name": "web-config"}, "secret": {"name": "web-secrets"}},
        keyVault={"auth": {"servicePrincipalSecretRef": {"name": "sp"}}},
    )
    operator = start_operator(*secure.operator_args("--keyvault-skip-challenge-verification"),
                              env=secure.authority_env())

    assert wait_for(lambda: secret_data(kube, "web-secrets"), what="the target Secret") == {"db_password": value}
    assert kube.data("web-config") == {"db_host": "db.local", "Sentinel": "1"}
    synced = wait_ready(kube)
    status = kube.sync("web")["status"]
    assert status["secretKeyCount"] == 1 and status["keyCount"] == 2, status
    assert "Secret web-secrets" in synced["message"]
    assert secure.server.request_log.count(route="vault-secret-version", status=200) >= 1
    secret = kube.core.read_namespaced_secret("web-secrets", kube.namespace)
    assert [o.name for o in secret.metadata.owner_references] == ["web"]

    assert leaks(value, kube.data("web-config")) == [], "the ConfigMap"
    assert leaks(value, operator.log) == [], "the operator's log"
    assert leaks(value, event_messages(kube)) == [], "Events"
    assert leaks(value, kube.sync("web")) == [], "the AppConfigSync (status)"
    assert leaks(value, secret.metadata.to_dict()) == [], "the Secret's metadata"


def test_keyvault_rotation_reaches_the_secret_within_its_interval_and_rolls(
    kube: Kube, secure: Secure, start_operator
) -> None:
    _keyvault_store(kube, secure, "first-password")
    secret_deployment(kube, "web", "web-secrets")
    # Store and Key Vault both by the service principal (keyVault inherits the store's auth).
    kube.app_sync(
        "web",
        store={"endpoint": secure.endpoint, "auth": {"servicePrincipalSecretRef": {"name": "sp"}}},
        trimKeyPrefixes=["app:"],
        target={"configMap": {"name": "web-config"}, "secret": {"name": "web-secrets"}},
        keyVault={"refreshInterval": "1m"},
    )
    operator = start_operator(*secure.operator_args("--keyvault-skip-challenge-verification"),
                              env=secure.authority_env())
    wait_for(lambda: secret_data(kube, "web-secrets") == {"db_password": "first-password"}, what="first sync")
    wait_ready(kube)
    first_sets = wait_for(lambda: kube.replica_sets("web"))
    first_config = kube.data("web-config")

    # Rotated the way a user does it: the real SecretClient, as the service principal. The sentinel stays.
    credential = ClientSecretCredential(secure.issuer.tenant_id, SP_ID, SP_SECRET, authority=secure.endpoint,
                                        disable_instance_discovery=True, connection_verify=secure.ca)
    with SecretClient(secure.endpoint, credential, verify_challenge_resource=False,
                      connection_verify=secure.ca) as client:
        client.set_secret("db-password", "rotated-password")
    rotated_at = time.monotonic()

    wait_for(lambda: secret_data(kube, "web-secrets") == {"db_password": "rotated-password"},
             timeout=60 + 40, interval=1, what="the rotated secret within refreshInterval (1m) plus a margin")
    took = time.monotonic() - rotated_at
    # The Secret is written before the status that reports it.
    status = wait_for(lambda: (s := kube.sync("web")["status"]).get("lastSecretRefreshTime") and s,
                      what="status.lastSecretRefreshTime")
    rolled = wait_for(lambda: len(kube.replica_sets("web")) == 2 and kube.replica_sets("web"), what="a rollout")
    assert set(first_sets) < set(rolled)
    template = kube.apps.read_namespaced_deployment("web", kube.namespace).spec.template.metadata.annotations
    assert template[SECRET_HASH] == status["secretDataHash"]
    assert kube.data("web-config") == first_config
    for value in ("first-password", "rotated-password"):
        assert not leaks(value, operator.log, event_messages(kube), kube.sync("web"), kube.data("web-config"))
    print(f"rotation reached the Secret after {took:.0f}s")


def test_unresolvable_reference_is_keyvault_reference_failed_and_the_last_secret_stays(
    kube: Kube, secure: Secure, start_operator
) -> None:
    _keyvault_store(kube, secure, "good-password")
    kube.app_sync(
        "web",
        store={"endpoint": secure.endpoint, "auth": {"servicePrincipalSecretRef": {"name": "sp"}}},
        trimKeyPrefixes=["app:"],
        target={"configMap": {"name": "web-config"}, "secret": {"name": "web-secrets"}},
    )
    start_operator(*secure.operator_args("--keyvault-skip-challenge-verification"), env=secure.authority_env())
    wait_for(lambda: secret_data(kube, "web-secrets") == {"db_password": "good-password"}, what="first sync")
    wait_ready(kube)
    good_config = kube.data("web-config")

    # A new reference to a secret that is not in the vault, with a plain change in the same reload.
    put(secure.store, "app:api:key", secure.reference("missing-secret"), content_type=KV_REF_CONTENT_TYPE)
    put(secure.store, "app:db:host", "db.changed")
    put(secure.store, "Sentinel", "2")
    failed = wait_reason(kube, "KeyVaultReferenceFailed")
    assert "missing-secret" in failed["message"], failed["message"]
    time.sleep(3)
    assert ready(kube)["reason"] == "KeyVaultReferenceFailed", "the reason must stay clear while it fails"
    assert secret_data(kube, "web-secrets") == {"db_password": "good-password"}, "the last good Secret stays"
    assert kube.data("web-config") == good_config, "neither target is written from a failed reload"
    assert any(m.startswith("KeyVaultReferenceFailed") for m in event_messages(kube))

    # Once the secret exists the next retry resolves it.
    secure.vault.set_secret("missing-secret", "api-key-value")
    wait_for(lambda: secret_data(kube, "web-secrets") == {"db_password": "good-password", "api_key": "api-key-value"},
             timeout=60, what="recovery")
    assert kube.data("web-config")["db_host"] == "db.changed"
    wait_ready(kube)
