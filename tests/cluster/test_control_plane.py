"""Each test proves a real component of the local control plane is there (nothing is faked)."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from controlplane import Binaries, ControlPlane

pytestmark = pytest.mark.cluster

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.harness.appconfigsync.dev}
spec:
  group: harness.appconfigsync.dev
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                min: {type: integer}
                max: {type: integer}
              x-kubernetes-validations:
                - rule: self.min <= self.max
                  message: spec.min must not exceed spec.max
"""


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def test_api_server_enforces_structural_schema_and_cel(cluster: ControlPlane, namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=WIDGET_CRD)
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.harness.appconfigsync.dev")
    bad = {"apiVersion": "harness.appconfigsync.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
           "spec": {"min": 5, "max": 1}}
    result = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert "spec.min must not exceed spec.max" in result.stderr
    wrong_type = dict(bad, spec={"min": "five", "max": 1})
    result = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(wrong_type), check=False)
    assert result.returncode != 0 and "spec.min" in result.stderr
    good = dict(bad, spec={"min": 1, "max": 5})
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(good))


def test_rbac_denies_until_a_role_is_bound(cluster: ControlPlane, namespace: str) -> None:
    kubeconfig = cluster.mint_kubeconfig(namespace, "reader")
    core = client.CoreV1Api(cluster.api_client(kubeconfig))
    with pytest.raises(ApiException) as denied:
        core.list_namespaced_config_map(namespace)
    assert denied.value.status == 403
    cluster.kubectl("-n", namespace, "create", "role", "read-cm", "--verb=list", "--resource=configmaps")
    cluster.kubectl("-n", namespace, "create", "rolebinding", "read-cm", "--role=read-cm",
                    f"--serviceaccount={namespace}:reader")
    wait_for(lambda: _can_list(core, namespace))


def _can_list(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.list_namespaced_config_map(namespace)
        return True
    except ApiException as exc:
        assert exc.status == 403
        return False


def test_controller_manager_rolls_a_deployment(cluster: ControlPlane, namespace: str) -> None:
    apps = client.AppsV1Api(cluster.api_client())
    cluster.kubectl("-n", namespace, "create", "deployment", "web", "--image=example.invalid/web:1")
    first = wait_for(lambda: apps.list_namespaced_replica_set(namespace).items)
    assert len(first) == 1
    apps.patch_namespaced_deployment(
        "web", namespace, {"spec": {"template": {"metadata": {"annotations": {"appconfigsync.dev/config-hash": "x"}}}}}
    )
    replica_sets = wait_for(lambda: (rs := apps.list_namespaced_replica_set(namespace).items) and len(rs) == 2 and rs)
    assert {rs.metadata.name for rs in replica_sets} > {first[0].metadata.name}


def test_garbage_collector_deletes_dependents(cluster: ControlPlane, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client())
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(
        namespace,
        {"metadata": {"name": "dependent", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}},
    )
    core.delete_namespaced_config_map("owner", namespace)
    wait_for(lambda: "dependent" not in {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items})


def test_pinned_kubectl_talks_to_the_pinned_server(cluster: ControlPlane) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    pinned = Binaries.from_cache().kubectl.parent.name.removeprefix("kubernetes-")
    assert versions["clientVersion"]["gitVersion"] == pinned
    assert versions["serverVersion"]["gitVersion"] == pinned
    assert "default" in cluster.kubectl("get", "namespaces", "-o", "name").stdout
