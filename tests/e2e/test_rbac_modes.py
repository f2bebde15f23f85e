"""The operator runs with only deploy/'s RBAC, in both install modes, and the sync works end to end.

Each test mints its own ServiceAccount identity (a kubeconfig carrying only its token), bound exactly as
deploy/ binds the operator's, and starts `appconfig-sync run` with it as a separate process.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from appconfig_sync.emulator.server import EmulatorServer
from controlplane import ControlPlane
from e2e_support import OPERATOR_NAMESPACE, REPO, Kube, OperatorProcess, put, wait_for

pytestmark = pytest.mark.cluster

# What a denied request leaves in the operator's log (kopf's and the kubernetes client's wording).
DENIED = re.compile(r"\b403\b|forbidden", re.IGNORECASE)
TIMESTAMP = re.compile(r"^\[[-\d :,.]+\]")
# deploy/base/deployment.yaml's memory request (160Mi): the operator with a few objects must fit in it.
MEMORY_REQUEST_KIB = 160 * 1024


def kustomize(cluster: ControlPlane, overlay: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", str(REPO / "deploy" / overlay)).stdout) if d]


def rss_kib(process: OperatorProcess) -> int:
    assert process.proc is not None
    return int(subprocess.run(["ps", "-o", "rss=", "-p", str(process.proc.pid)], capture_output=True, text=True).stdout)


@pytest.fixture
def other_namespace(cluster: ControlPlane) -> Iterator[str]:
    """A namespace the operator does not watch, holding a ConfigMap and a Secret it must not reach."""
    name = f"t-other-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("-n", name, "create", "configmap", "private", "--from-literal=k=v")
    cluster.kubectl("-n", name, "create", "secret", "generic", "private", "--from-literal=k=v")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def sync_and_roll(kube: Kube, store, emulator: EmulatorServer) -> None:
    """The tutorial's path: first sync, Ready, then a sentinel change updates the ConfigMap and rolls the Deployment."""
    wait_for(lambda: kube.data("web-config") == {"message": "hello", "Sentinel": "1"}, what="first sync")
    wait_for(lambda: (kube.ready("web") or {}).get("status") == "True", what="Ready")
    put(store, "message", "changed")
    put(store, "Sentinel", "2")
    wait_for(lambda: (kube.data("web-config") or {}).get("message") == "changed", what="sentinel change synced")
    wait_for(lambda: len(kube.replica_sets("web")) == 2, what="the Deployment rolled")
    reasons = {(e.involved_object.kind, e.reason) for e in kube.events()}
    assert ("Deployment", "ConfigChanged") in reasons and ("AppConfigSync", "RolledOut") in reasons


def prepare(kube: Kube, store, emulator: EmulatorServer, objects: int = 1) -> None:
    put(store, "message", "hello")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.deployment("web", "web-config")
    kube.app_sync("web")
    for i in range(1, objects):
        kube.app_sync(f"web{i}")


def wait_for_rbac(cluster: ControlPlane, service_account: str, namespace: str, *checks: str) -> None:
    """RBAC reaches the authorizer through a watch: let the bindings arrive before the operator starts."""
    user = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{service_account}"
    for check in checks:
        verb, resource = check.split(" ")
        wait_for(
            lambda: cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace, "--as", user, check=False)
            .stdout.strip() == "yes",
            what=f"{user} may {check} in {namespace}",
        )


def denied_lines(log: str) -> list[str]:
    # Match the message, not the "[2026-12-04 16:24:52,403]" timestamp before it.
    return [line for line in log.splitlines() if DENIED.search(TIMESTAMP.sub("", line, count=1))]


def test_namespaced_mode_syncs_and_cannot_reach_anything_else(
    cluster: ControlPlane, crds: None, namespace: str, other_namespace: str, kube: Kube, store,
    emulator: EmulatorServer, start_operator,
) -> None:
    # deploy/namespaced's Roles and RoleBindings (the watched namespace's and the leader Lease's), moved to this
    # test's namespace (the Lease too, so no other test's Lease is involved) and bound to a fresh identity.
    service_account = f"ns-{uuid.uuid4().hex[:6]}"
    rbac = [d for d in kustomize(cluster, "namespaced") if d["kind"] in ("Role", "RoleBinding")]
    assert sorted(d["metadata"]["name"] for d in rbac) == sorted(2 * ["appconfig-sync", "appconfig-sync-leader-election"])
    for doc in rbac:
        doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects", []):
            subject["name"] = service_account
    kubeconfig = cluster.mint_kubeconfig(OPERATOR_NAMESPACE, service_account, [yaml.safe_dump_all(rbac)])
    wait_for_rbac(cluster, service_account, namespace, "watch appconfigsyncs.appconfigsync.dev",
                  "update leases.coordination.k8s.io/appconfig-sync")

    prepare(kube, store, emulator)
    operator = start_operator("--leader-elect", "--leader-election-namespace", namespace, kubeconfig=kubeconfig)
    sync_and_roll(kube, store, emulator)

    core = client.CoreV1Api(cluster.api_client(kubeconfig))
    attempts: dict[str, Callable[[], Any]] = {
        "read ConfigMap": lambda: core.read_namespaced_config_map("private", other_namespace),
        "read Secret": lambda: core.read_namespaced_secret("private", other_namespace),
        "list ConfigMaps": lambda: core.list_namespaced_config_map(other_namespace),
        "list Secrets": lambda: core.list_namespaced_secret(other_namespace),
        "create ConfigMap": lambda: core.create_namespaced_config_map(other_namespace, {"metadata": {"name": "x"}}),
        "create Secret": lambda: core.create_namespaced_secret(other_namespace, {"metadata": {"name": "x"}}),
        "patch ConfigMap": lambda: core.patch_namespaced_config_map("private", other_namespace, {"data": {"k": "w"}}),
        "patch Secret": lambda: core.patch_namespaced_secret("private", other_namespace, {"data": {"k": "dw=="}}),
        "list ConfigMaps in all namespaces": lambda: core.list_config_map_for_all_namespaces(),
        "list Secrets in all namespaces": lambda: core.list_secret_for_all_namespaces(),
        "list namespaces": lambda: core.list_namespace(),
        "list CRDs": lambda: client.ApiextensionsV1Api(cluster.api_client(kubeconfig)).list_custom_resource_definition(),
    }
    statuses = {}
    for what, attempt in attempts.items():
        try:
            attempt()
            statuses[what] = 200
        except ApiException as exc:
            statuses[what] = exc.status
    assert statuses == {what: 403 for what in attempts}
    # ...while the same identity does read its own namespace.
    assert core.read_namespaced_config_map("web-config", namespace).data["message"] == "changed"

    assert denied_lines(operator.log) == [], "the operator was denied something with the namespaced Role"


def test_clusterwide_mode_syncs_with_only_the_clusterrole(
    cluster: ControlPlane, crds: None, namespace: str, kube: Kube, store, emulator: EmulatorServer, start_operator,
    request: pytest.FixtureRequest,
) -> None:
    """All namespaces are watched (no --namespace): kopf's cluster-wide start-up runs with the ClusterRole alone.

    Also measures the operator's memory with a few objects: the Deployment's requests and limits are sized from it.
    """
    service_account = f"cw-{uuid.uuid4().hex[:6]}"
    [role] = [d for d in kustomize(cluster, "clusterwide") if d["kind"] == "ClusterRole"]
    [binding] = [d for d in kustomize(cluster, "clusterwide") if d["kind"] == "ClusterRoleBinding"]
    binding["metadata"]["name"] = f"appconfig-sync-{service_account}"
    binding["subjects"][0]["name"] = service_account
    request.addfinalizer(lambda: cluster.kubectl("delete", "clusterrolebinding", binding["metadata"]["name"], check=False))
    kubeconfig = cluster.mint_kubeconfig(OPERATOR_NAMESPACE, service_account, [yaml.safe_dump_all([role, binding])])
    wait_for_rbac(cluster, service_account, namespace, "watch appconfigsyncs.appconfigsync.dev")
    objects = 5

    prepare(kube, store, emulator, objects=objects)
    operator = start_operator(kubeconfig=kubeconfig, watch=[])
    sync_and_roll(kube, store, emulator)
    for i in range(1, objects):
        wait_for(lambda: (kube.ready(f"web{i}") or {}).get("status") == "True", what=f"web{i} Ready")

    rss = rss_kib(operator)
    print(f"\noperator RSS with {objects} AppConfigSyncs: {rss / 1024:.1f} MiB")
    assert rss < MEMORY_REQUEST_KIB, f"RSS {rss} KiB: re-measure, then resize the memory request and limit in deploy/"
    assert denied_lines(operator.log) == [], "the operator was denied something with the ClusterRole"
