"""End-to-end fixtures: the real control plane, the emulator, and the operator as a separate process.

The operator runs as its own ServiceAccount (a kubeconfig with only that token), so the API server's
audit log can tell its writes from the tests' own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.appconfiguration import AzureAppConfigurationClient
from kubernetes import client

from appconfig_sync.emulator.identity import TokenIssuer
from appconfig_sync.emulator.keyvault import SecretVault
from appconfig_sync.emulator.server import EmulatorServer
from appconfig_sync.emulator.tls import ensure_tls
from controlplane import ControlPlane
from secure_support import MI_ID, SP_ID, SP_SECRET, Secure
from e2e_support import OPERATOR_NAMESPACE, OPERATOR_SA, Audit, Kube, OperatorProcess, operator_rbac


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: ControlPlane, crds: None) -> Path:
    return cluster.mint_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, [operator_rbac()])


@pytest.fixture
def start_operator(
    operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Starts `appconfig-sync run` as the operator's ServiceAccount watching the test's namespace (or, with
    `kubeconfig=` and `watch=`, another identity and other namespaces; `watch=[]` is cluster-wide).
    Stopped at teardown."""
    started: list[OperatorProcess] = []

    def start(
        *extra: str, env: dict[str, str] | None = None, kubeconfig: Path | None = None, watch: list[str] | None = None
    ) -> OperatorProcess:
        namespaces = [namespace] if watch is None else watch
        process = OperatorProcess(
            [sys.executable, "-m", "appconfig_sync", "run", *(f"--namespace={n}" for n in namespaces), *extra],
            {**os.environ, "KUBECONFIG": str(kubeconfig or operator_kubeconfig), **(env or {})},
            tmp_path / f"operator-{len(started)}.log",
        ).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def store(emulator: EmulatorServer) -> Iterator[AzureAppConfigurationClient]:
    """The real SDK client: tests change the store as a user would with `az appconfig kv set`."""
    with AzureAppConfigurationClient.from_connection_string(emulator.connection_string) as appconfig:
        yield appconfig


@pytest.fixture
def kube(cluster: ControlPlane, namespace: str, crds: None) -> Kube:
    api = cluster.api_client()
    return Kube(cluster, namespace, client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api))


@pytest.fixture
def audit(cluster: ControlPlane) -> Audit:
    return Audit(cluster.audit_log)


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[Secure]:
    """HTTPS emulator with a service principal, a system- and a user-assigned managed identity, and a vault.

    Federated credentials depend on the cluster's issuer and a ServiceAccount: tests register them.
    """
    issuer = TokenIssuer()
    issuer.add_client_secret(SP_ID, SP_SECRET)
    issuer.add_managed_identity(None)
    issuer.add_managed_identity(MI_ID)
    vault = SecretVault(issuer)
    tls = ensure_tls(tmp_path / "emulator-tls")
    with EmulatorServer(tls=tls, issuer=issuer, vault=vault) as server:
        with AzureAppConfigurationClient.from_connection_string(
            server.connection_string, connection_verify=str(tls.ca_cert)
        ) as store:
            yield Secure(server, issuer, vault, str(tls.ca_cert), store)
