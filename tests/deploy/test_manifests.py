"""deploy/: the kustomize modes and the Helm chart render, lint, agree with each other and apply to a real API server."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane import Binaries, ControlPlane

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "appconfig-sync"
RELEASE_NAMESPACE = "appconfig-sync-system"


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def only(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in manifests if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    binary = Binaries.from_cache().helm
    if not binary.exists():
        pytest.fail(f"helm is not built ({binary} missing): run `make control-plane`")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)


def template(*values: str) -> list[dict[str, Any]]:
    result = helm("template", "appconfig-sync", str(CHART), "--namespace", RELEASE_NAMESPACE, "--include-crds", *values)
    assert result.returncode == 0, result.stderr
    return docs(result.stdout)


def kustomize(overlay: str) -> list[dict[str, Any]]:
    kubectl = Binaries.from_cache().kubectl
    return docs(subprocess.run([str(kubectl), "kustomize", str(DEPLOY / overlay)], capture_output=True, text=True, check=True).stdout)


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return only(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]


# --- what needs no API server ----------------------------------------------------------------------


def test_chart_crd_is_the_repo_crd() -> None:
    for crd in (REPO / "crds").glob("*.yaml"):
        copy = CHART / "crds" / crd.name
        assert copy.exists() and copy.read_text() == crd.read_text(), f"copy {crd} to {copy}: the chart's CRD differs"
    assert {p.name for p in (CHART / "crds").iterdir()} == {p.name for p in (REPO / "crds").glob("*.yaml")}


def test_namespaced_role_grants_what_the_cluster_role_grants() -> None:
    cluster_rules = docs((DEPLOY / "base" / "clusterrole.yaml").read_text())[0]["rules"]
    role = only(docs((DEPLOY / "namespaced" / "role.yaml").read_text()), "Role")
    assert role["rules"] == cluster_rules


# --- helm ------------------------------------------------------------------------------------------



@pytest.mark.cluster
def test_helm_lint() -> None:
    for values in ([], ["--set", "watchNamespaces={team-a}"], ["--set", "replicas=1", "--set", "leaderElection.enabled=false"]):
        result = helm("lint", "--strict", str(CHART), *values)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.cluster
def test_helm_rbac_and_resources_are_the_kustomize_ones() -> None:
    clusterwide = template()
    assert only(clusterwide, "ClusterRole")["rules"] == docs((DEPLOY / "base" / "clusterrole.yaml").read_text())[0]["rules"]
    namespaced = template("--set", "watchNamespaces={team-a}")
    kustomize_role = only(docs((DEPLOY / "namespaced" / "role.yaml").read_text()), "Role")
    assert only(namespaced, "Role", "appconfig-sync")["rules"] == kustomize_role["rules"]
    lease_role = only(kustomize(""), "Role", "appconfig-sync-leader-election")
    assert only(clusterwide, "Role", "appconfig-sync-leader-election")["rules"] == lease_role["rules"]
    assert container(clusterwide)["resources"] == container(kustomize(""))["resources"]


@pytest.mark.cluster
def test_helm_values_reach_the_pod() -> None:
    manifests = template(
        "--set", "replicas=3",
        "--set", "logLevel=DEBUG", "--set", "logFormat=text",
        "--set", "metrics.port=9100",
        "--set", "serviceAccount.annotations.azure\\.workload\\.identity/client-id=1111",
        "--set", "azureWorkloadIdentity.enabled=true",
        "--set", "podAnnotations.team=payments",
        "--set", "extraEnv[0].name=AZURE_LOG_LEVEL", "--set", "extraEnv[0].value=warning",
        "--set", "nodeSelector.pool=system",
        "--set", "image.repository=example.invalid/appconfig-sync", "--set", "image.tag=9.9.9",
    )
    deployment = only(manifests, "Deployment")
    pod = deployment["spec"]["template"]
    operator = container(manifests)
    assert deployment["spec"]["replicas"] == 3
    assert operator["args"] == [
        "run", "--liveness=http://0.0.0.0:8080/healthz", "--log-level=DEBUG", "--log-format=text",
        "--metrics-port=9100", "--leader-elect", "--leader-election-id=appconfig-sync",
    ]
    assert operator["image"] == "example.invalid/appconfig-sync:9.9.9"
    assert {"name": "AZURE_LOG_LEVEL", "value": "warning"} in operator["env"]
    assert {"name": "metrics", "containerPort": 9100} in operator["ports"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["metadata"]["annotations"] == {"team": "payments"}
    assert pod["spec"]["nodeSelector"] == {"pool": "system"}
    assert only(manifests, "ServiceAccount")["metadata"]["annotations"] == {"azure.workload.identity/client-id": "1111"}


@pytest.mark.cluster
@pytest.mark.parametrize(
    "values, error",
    [
        (["--set", "replicas=2", "--set", "leaderElection.enabled=false"], "replicas=2 needs leaderElection.enabled=true"),
        (["--set", "installMode=namespaced"], "installMode=namespaced needs watchNamespaces"),
        (["--set", "watchNamespaces={team-*}"], 'watchNamespaces has the pattern "team-*"'),
        (["--set", "installMode=global"], 'installMode="global": use clusterwide, namespaced'),
        (["--set", "logFormat=xml"], 'logFormat="xml": use text or json'),
        (["--set", "metrics.port=8080"], "metrics.port=8080 is the liveness probe's port"),
    ],
)
def test_helm_refuses_values_that_do_not_fit_naming_the_value(values: list[str], error: str) -> None:
    result = helm("template", "appconfig-sync", str(CHART), *values)
    assert result.returncode != 0 and error in result.stderr, result.stderr


def assert_hardened(manifests: list[dict[str, Any]]) -> None:
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    operator = pod["containers"][0]
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert operator["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
    }
    assert operator["resources"]["requests"] and operator["resources"]["limits"]["memory"]
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert "--liveness=http://0.0.0.0:8080/healthz" in operator["args"] and operator["args"][0] == "run"
    assert pod["terminationGracePeriodSeconds"] >= 15


def apply_dry_run(cluster: ControlPlane, manifests: list[dict[str, Any]]) -> None:
    cluster.kubectl("create", "namespace", RELEASE_NAMESPACE, check=False)
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(manifests), check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("mode", ["default", "namespaced", "replicas=2"])
def test_helm_template_applies(cluster: ControlPlane, crds: None, namespace: str, mode: str) -> None:
    values = {
        "default": [],
        "namespaced": ["--set", f"watchNamespaces={{{namespace}}}"],
        "replicas=2": ["--set", "replicas=2"],
    }[mode]
    manifests = template(*values)
    assert_hardened(manifests)
    kinds = {d["kind"] for d in manifests}
    args = container(manifests)["args"]
    if mode == "namespaced":
        assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
        assert only(manifests, "RoleBinding", "appconfig-sync")["metadata"]["namespace"] == namespace
        assert f"--namespace={namespace}" in args
    else:
        assert {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"} <= kinds
        assert not any(a.startswith("--namespace") for a in args)
    if mode == "replicas=2":
        assert only(manifests, "Deployment")["spec"]["replicas"] == 2 and "--leader-elect" in args
    apply_dry_run(cluster, manifests)


# --- kustomize -------------------------------------------------------------------------------------


def test_kustomize_default_is_clusterwide_and_applies(cluster: ControlPlane, crds: None) -> None:
    manifests = kustomize("")
    assert manifests == kustomize("clusterwide")
    assert_hardened(manifests)
    binding = only(manifests, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == only(manifests, "ClusterRole")["metadata"]["name"]
    cluster.kubectl("create", "namespace", RELEASE_NAMESPACE, check=False)
    result = cluster.kubectl("apply", "-k", str(DEPLOY), "--dry-run=server", check=False)
    assert result.returncode == 0, result.stderr


def test_kustomize_namespaced_has_no_cluster_access_and_applies(cluster: ControlPlane, crds: None) -> None:
    manifests = kustomize("namespaced")
    assert_hardened(manifests)
    assert not {"ClusterRole", "ClusterRoleBinding"} & {d["kind"] for d in manifests}
    watched = only(manifests, "RoleBinding", "appconfig-sync")["metadata"]["namespace"]
    assert f"--namespace={watched}" in container(manifests)["args"]
    cluster.kubectl("create", "namespace", RELEASE_NAMESPACE, check=False)
    cluster.kubectl("create", "namespace", watched, check=False)  # the example watched namespace
    result = cluster.kubectl("apply", "-k", str(DEPLOY / "namespaced"), "--dry-run=server", check=False)
    assert result.returncode == 0, result.stderr
