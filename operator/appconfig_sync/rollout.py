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
class Change:
    """A target's current data hash, which consumers carry as `annotation` on their pod template.

    `new` marks a real store change: every consumer rolls. Otherwise only consumers that already carry an
    older hash roll (a rollout interrupted by a failure or a restart is completed), and a workload that
    never carried one (as on the first sync) is left alone.
    """

    kind: Kind
    name: str
    annotation: str
    data_hash: str
    new: bool


@dataclass(frozen=True)
class Rolled:
    workload: ObjectRef
    changes: tuple[Change, ...]


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


def due_changes(workload: dict[str, Any], changes: list[Change]) -> tuple[Change, ...]:
    """The changes this workload consumes and does not carry yet (see Change for when that rolls it)."""
    template_annotations = workload["spec"]["template"].get("metadata", {}).get("annotations") or {}
    return tuple(
        change
        for change in changes
        if any(consumers([workload], change.kind, change.name))
        and template_annotations.get(change.annotation) != change.data_hash
        and (change.new or change.annotation in template_annotations)
    )


def roll(apps: client.AppsV1Api, namespace: str, changes: list[Change]) -> list[Rolled]:
    """Stamp each change's hash on the pod template of the consumers that are due (see Change).

    One patch per workload, however many of its targets changed, so one store change is one rollout.
    Idempotent: a workload already at these hashes is not patched, so a repeated pass rolls nothing twice.
    """
    rolled: list[Rolled] = []
    patchers = {
        "Deployment": apps.patch_namespaced_deployment,
        "StatefulSet": apps.patch_namespaced_stateful_set,
        "DaemonSet": apps.patch_namespaced_daemon_set,
    }
    for workload in list_workloads(apps, namespace):
        due = due_changes(workload, changes)
        if not due:
            continue
        meta = workload["metadata"]
        annotations = {change.annotation: change.data_hash for change in due}
        patchers[workload["kind"]](meta["name"], namespace, {"spec": {"template": {"metadata": {"annotations": annotations}}}})
        rolled.append(Rolled(ObjectRef("apps/v1", workload["kind"], namespace, meta["name"], meta["uid"]), due))
    return rolled
