"""Credentials for the store, read from the object's namespace: a connection string or an Entra ID identity."""

from __future__ import annotations

import base64

from kubernetes import client
from kubernetes.client.rest import ApiException

from appconfig_sync.spec import Auth, AppConfigSyncSpec, ManagedIdentity, ServicePrincipal, WorkloadIdentity
from appconfig_sync.store import StoreAccess

SERVICE_PRINCIPAL_KEYS = ("azure_tenant_id", "azure_client_id", "azure_client_secret")


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


def credential_for(core: client.CoreV1Api, namespace: str, auth: Auth | None, field: str):  # -> AsyncTokenCredential
    """An async azure-identity credential for the auth mode; absent auth is the operator pod's workload identity."""
    from azure.identity.aio import ClientSecretCredential, ManagedIdentityCredential, WorkloadIdentityCredential

    if isinstance(auth, ManagedIdentity):
        return ManagedIdentityCredential(client_id=auth.client_id) if auth.client_id else ManagedIdentityCredential()
    if isinstance(auth, ServicePrincipal):
        values = read_secret(core, namespace, auth.secret_name, SERVICE_PRINCIPAL_KEYS, f"{field}.servicePrincipalSecretRef")
        return ClientSecretCredential(values["azure_tenant_id"], values["azure_client_id"], values["azure_client_secret"])
    client_id = auth.client_id if isinstance(auth, WorkloadIdentity) else None
    try:
        return WorkloadIdentityCredential(client_id=client_id) if client_id else WorkloadIdentityCredential()
    except ValueError as exc:
        raise AccessError(
            "AuthenticationFailed",
            f"workload identity is not set up for the operator ({exc}); set {field} to another mode, "
            "or give the operator pod AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE",
        ) from None


def resolve_access(core: client.CoreV1Api, namespace: str, spec: AppConfigSyncSpec) -> StoreAccess:
    store = spec.store
    if store.connection_string is not None:
        ref = store.connection_string
        values = read_secret(core, namespace, ref.name, (ref.key,), "spec.store.connectionStringSecretRef")
        return StoreAccess(connection_string=values[ref.key])
    assert store.endpoint is not None
    return StoreAccess(endpoint=store.endpoint, credential=credential_for(core, namespace, store.auth, "spec.store.auth"))
