"""Credentials for the store, read from the object's namespace: a connection string or an Entra ID identity."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from appconfig_sync.spec import Auth, AppConfigSyncSpec, ManagedIdentity, ServicePrincipal, WorkloadIdentity
from appconfig_sync.store import StoreAccess

SERVICE_PRINCIPAL_KEYS = ("azure_tenant_id", "azure_client_id", "azure_client_secret")


@dataclass(frozen=True)
class AzureOptions:
    """Operator-wide options for every Azure client (store, Entra ID, Key Vault)."""

    ca_file: str | None = None
    """Trust this CA bundle instead of the system's (a private endpoint's or an emulator's CA)."""
    verify_challenge_resource: bool = True
    """Key Vault checks that its auth challenge names a vault domain; only a local emulator needs this off."""

    def client_options(self) -> dict[str, Any]:
        return {"connection_verify": self.ca_file} if self.ca_file else {}


class AccessError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


def read_secret(core: client.CoreV1Api, namespace: str, name: str, keys: tuple[str, ...], field: str) -> dict[str, str]:
    """The named keys of a Secret, decoded; errors name the Secret, the field that points at it, and the fix."""
    try:
        secret = core.read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise AccessError(
                "SecretNotFound",
                f"Secret {namespace}/{name} (from {field}) does not exist: create it with the key(s) {', '.join(keys)}",
            ) from None
        if exc.status == 403:
            raise AccessError(
                "Forbidden", f"the operator may not read Secret {namespace}/{name} (from {field}): check its RBAC"
            ) from None
        raise AccessError("KubernetesError", f"reading Secret {namespace}/{name}: HTTP {exc.status} {exc.reason}") from None
    data = secret.data or {}
    missing = [k for k in keys if not data.get(k)]
    if missing:
        raise AccessError(
            "SecretNotFound",
            f"Secret {namespace}/{name} (from {field}) has no key {', '.join(missing)}: add it, or set the key in {field}",
        )
    return {k: base64.b64decode(data[k]).decode() for k in keys}


def credential_for(
    core: client.CoreV1Api, namespace: str, auth: Auth | None, field: str, options: AzureOptions
):  # -> AsyncTokenCredential
    """An async azure-identity credential for the auth mode; absent auth is the operator pod's workload identity."""
    from azure.identity.aio import ClientSecretCredential, ManagedIdentityCredential, WorkloadIdentityCredential

    kwargs = options.client_options()
    if isinstance(auth, ManagedIdentity):
        return ManagedIdentityCredential(client_id=auth.client_id, **kwargs)
    if isinstance(auth, ServicePrincipal):
        values = read_secret(core, namespace, auth.secret_name, SERVICE_PRINCIPAL_KEYS, f"{field}.servicePrincipalSecretRef")
        return ClientSecretCredential(
            values["azure_tenant_id"], values["azure_client_id"], values["azure_client_secret"], **kwargs
        )
    client_id = auth.client_id if isinstance(auth, WorkloadIdentity) else None
    try:
        return WorkloadIdentityCredential(client_id=client_id, **kwargs) if client_id else WorkloadIdentityCredential(**kwargs)
    except ValueError as exc:
        raise AccessError(
            "AuthenticationFailed",
            f"workload identity is not set up for the operator ({exc}); set {field} to another mode, "
            "or give the operator pod AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE",
        ) from None


class VaultConfigs(dict):
    """The provider's keyvault_client_configs: listed vaults use their own credential, any other referenced
    vault the default one, and every vault gets the operator's TLS options (the provider would otherwise
    build clients for unlisted vaults without them)."""

    def __init__(self, listed: dict[str, dict[str, Any]], default: dict[str, Any]) -> None:
        super().__init__(listed)
        self.default = default

    def get(self, vault_url: str, fallback: Any = None) -> dict[str, Any]:  # type: ignore[override]
        # A copy: the provider pops "credential" out of what it gets.
        return dict(super().get(vault_url) or self.default)


def keyvault_options(
    core: client.CoreV1Api, namespace: str, spec: AppConfigSyncSpec, options: AzureOptions
) -> dict[str, Any]:
    """The provider's Key Vault options: credentials per vault, TLS options, and the secret refresh interval."""
    kv = spec.key_vault
    if kv is None:
        return {}
    tls = {**options.client_options(), "verify_challenge_resource": options.verify_challenge_resource}
    default = credential_for(core, namespace, kv.auth, "spec.keyVault.auth", options)
    listed = {
        # The provider looks vaults up by their URL with exactly one trailing slash.
        vault.uri.rstrip("/") + "/": {
            "credential": credential_for(core, namespace, vault.auth, f"spec.keyVault.vaults[{i}].auth", options),
            **tls,
        }
        for i, vault in enumerate(kv.vaults)
    }
    result: dict[str, Any] = {
        "keyvault_credential": default,
        "keyvault_client_configs": VaultConfigs(listed, {"credential": default, **tls}),
    }
    if kv.refresh_interval is not None:
        result["secret_refresh_interval"] = int(kv.refresh_interval.total_seconds())
    return result


def resolve_access(
    core: client.CoreV1Api, namespace: str, spec: AppConfigSyncSpec, options: AzureOptions = AzureOptions()
) -> StoreAccess:
    store = spec.store
    client_options = tuple(options.client_options().items())
    # Secrets are read before any credential is built, so a missing Secret leaves nothing to close.
    if store.connection_string is not None:
        ref = store.connection_string
        values = read_secret(core, namespace, ref.name, (ref.key,), "spec.store.connectionStringSecretRef")
        return StoreAccess(
            connection_string=values[ref.key],
            client_options=client_options,
            keyvault=keyvault_options(core, namespace, spec, options),
        )
    assert store.endpoint is not None
    credential = credential_for(core, namespace, store.auth, "spec.store.auth", options)
    return StoreAccess(
        endpoint=store.endpoint,
        credential=credential,
        client_options=client_options,
        keyvault=keyvault_options(core, namespace, spec, options),
    )
