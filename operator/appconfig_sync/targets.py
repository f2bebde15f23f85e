"""Write a target ConfigMap or Secret only when its data changed, and never one we do not own."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.rest import ApiException

from appconfig_sync.objects import DATA_HASH, MANAGED_BY, OWNER_LABEL, ObjectRef

Kind = Literal["ConfigMap", "Secret"]
MERGE_PATCH = "application/merge-patch+json"


class TargetConflict(Exception):
    """The target exists and belongs to someone else; we leave it untouched."""


@dataclass(frozen=True)
class WriteResult:
    written: bool
    """True when the API server received a create or patch."""
    previous_hash: str | None
    """The data hash the target carried before (None when it did not exist or was not ours)."""


def is_owned_by(metadata: Any, owner: ObjectRef) -> bool:
    refs = (metadata.get("ownerReferences") if isinstance(metadata, dict) else metadata.owner_references) or []
    for ref in refs:
        uid = ref.get("uid") if isinstance(ref, dict) else ref.uid
        controller = ref.get("controller") if isinstance(ref, dict) else ref.controller
        if uid == owner.uid and controller:
            return True
    return False


def _encode(kind: Kind, data: dict[str, str]) -> dict[str, str]:
    if kind == "Secret":
        return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return data


def current_data(kind: Kind, obj: Any) -> dict[str, str]:
    data = obj.data or {}
    if kind == "Secret":
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
    return dict(data)


def apply_target(
    core: client.CoreV1Api, kind: Kind, owner: ObjectRef, name: str, data: dict[str, str], data_hash: str
) -> WriteResult:
    """Create or patch the target so it holds exactly `data`; no request at all when it already does.

    The patch carries the resourceVersion we read, so a concurrent edit makes it fail (409) rather
    than be overwritten blindly; the caller's next pass reads again.
    """
    read = core.read_namespaced_config_map if kind == "ConfigMap" else core.read_namespaced_secret
    try:
        existing = read(name, owner.namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        existing = None

    labels = {**MANAGED_BY, OWNER_LABEL: owner.name}
    if existing is None:
        body: dict[str, Any] = {
            "metadata": {
                "name": name,
                "namespace": owner.namespace,
                "labels": labels,
                "annotations": {DATA_HASH: data_hash},
                "ownerReferences": [owner.owner_reference()],
            },
            "data": _encode(kind, data),
        }
        if kind == "Secret":
            body["type"] = "Opaque"
            core.create_namespaced_secret(owner.namespace, body)
        else:
            core.create_namespaced_config_map(owner.namespace, body)
        return WriteResult(written=True, previous_hash=None)

    meta = existing.metadata
    if not is_owned_by(meta, owner):
        raise TargetConflict(
            f"{kind} {owner.namespace}/{name} exists and is not owned by {owner}; "
            f"delete it or choose another name in spec.target"
        )
    previous_hash = (meta.annotations or {}).get(DATA_HASH)
    have = current_data(kind, existing)
    extra_binary = bool(getattr(existing, "binary_data", None))
    current_labels = meta.labels or {}
    if (
        have == data
        and previous_hash == data_hash
        and not extra_binary
        and all(current_labels.get(k) == v for k, v in labels.items())
    ):
        return WriteResult(written=False, previous_hash=previous_hash)

    patch: dict[str, Any] = {
        "metadata": {"resourceVersion": meta.resource_version, "labels": labels, "annotations": {DATA_HASH: data_hash}},
        # A merge patch: keys we no longer render are removed by setting them to null.
        "data": {**{k: None for k in have if k not in data}, **_encode(kind, data)},
    }
    if extra_binary:
        patch["binaryData"] = None
    if kind == "Secret":
        core.patch_namespaced_secret(name, owner.namespace, patch, _content_type=MERGE_PATCH)
    else:
        core.patch_namespaced_config_map(name, owner.namespace, patch, _content_type=MERGE_PATCH)
    return WriteResult(written=True, previous_hash=previous_hash)
