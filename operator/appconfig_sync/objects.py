"""References to Kubernetes objects, and the labels and annotations this operator puts on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from appconfig_sync import GROUP, KIND, PREFIX, VERSION

MANAGED_BY = {"app.kubernetes.io/managed-by": "appconfig-sync"}
OWNER_LABEL = f"{PREFIX}owner"
DATA_HASH = f"{PREFIX}data-hash"
CONFIG_HASH = f"{PREFIX}config-hash"
SECRET_HASH = f"{PREFIX}secret-hash"
ROLLOUT_OPT_OUT = f"{PREFIX}rollout"  # "disabled" on a workload: never roll it
REFRESH_REQUESTED = f"{PREFIX}refresh-requested-at"


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    @classmethod
    def of_sync(cls, body: Mapping[str, Any]) -> ObjectRef:
        meta = body["metadata"]
        return cls(f"{GROUP}/{VERSION}", KIND, meta["namespace"], meta["name"], meta["uid"])

    def owner_reference(self) -> dict[str, Any]:
        """A controller reference: garbage collection deletes the target with its AppConfigSync."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"
