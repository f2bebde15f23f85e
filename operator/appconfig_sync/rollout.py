"""Roll the workloads whose pods consume a target, by stamping its data hash on their pod template."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from appconfig_sync.objects import ROLLOUT_OPT_OUT, ObjectRef
from appconfig_sync.targets import Kind

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True)
class Rolled:
    workload: ObjectRef
    previous: str | None


def _pod_spec_references(pod_spec: dict[str, Any], kind: Kind, name: str) -> bool:
    """Whether a pod spec mounts or reads `name`: volume, projected volume, envFrom or env valueFrom."""
    ref_key, volume_key, name_key = (
        ("configMapRef", "configMap", "name") if kind == "ConfigMap" else ("secretRef", "secret", "secretName")
    )
    key_ref = "configMapKeyRef" if kind == "ConfigMap" else "secretKeyRef"
    for volume in pod_spec.get("volumes") or []:
        if (volume.get(volume_key) or {}).get(name_key) == name:
            return True
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get(volume_key) or {}).get("name") == name:
                return True
    for container in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
        for env_from in container.get("envFrom") or []:
            if (env_from.get(ref_key) or {}).get("name") == name:
                return True
        for env in container.get("env") or []:
            if ((env.get("valueFrom") or {}).get(key_ref) or {}).get("name") == name:
                return True
    return False


def consumers(workloads: list[dict[str, Any]], kind: Kind, name: str) -> Iterator[dict[str, Any]]:
    """Workloads whose pod template references the target and that did not opt out."""
    for workload in workloads:
        annotations = workload["metadata"].get("annotations") or {}
        if annotations.get(ROLLOUT_OPT_OUT) == "disabled":
            continue
        if _pod_spec_references(workload["spec"]["template"].get("spec") or {}, kind, name):
            yield workload


def list_workloads(apps: client.AppsV1Api, namespace: str) -> list[dict[str, Any]]:
    serialize = apps.api_client.sanitize_for_serialization
    items: list[dict[str, Any]] = []
    for kind, lister in (
        ("Deployment", apps.list_namespaced_deployment),
        ("StatefulSet", apps.list_namespaced_stateful_set),
        ("DaemonSet", apps.list_namespaced_daemon_set),
    ):
        for item in lister(namespace).items:
            items.append({**serialize(item), "kind": kind, "apiVersion": "apps/v1"})
    return items


def roll(
    apps: client.AppsV1Api, namespace: str, kind: Kind, name: str, annotation: str, data_hash: str
) -> list[Rolled]:
    """Stamp `annotation: data_hash` on every consumer's pod template that does not carry it yet.

    Idempotent: a workload already at this hash is not patched, so a retried or repeated pass
    rolls nothing twice.
    """
    rolled: list[Rolled] = []
    patchers = {
        "Deployment": apps.patch_namespaced_deployment,
        "StatefulSet": apps.patch_namespaced_stateful_set,
        "DaemonSet": apps.patch_namespaced_daemon_set,
    }
    for workload in consumers(list_workloads(apps, namespace), kind, name):
        template_annotations = workload["spec"]["template"].get("metadata", {}).get("annotations") or {}
        previous = template_annotations.get(annotation)
        if previous == data_hash:
            continue
        meta = workload["metadata"]
        patchers[workload["kind"]](
            meta["name"], namespace, {"spec": {"template": {"metadata": {"annotations": {annotation: data_hash}}}}}
        )
        rolled.append(Rolled(ObjectRef("apps/v1", workload["kind"], namespace, meta["name"], meta["uid"]), previous))
    return rolled
