"""kopf wiring: one daemon per AppConfigSync, and an index of the data hashes its targets hold.

Handlers stay thin: the work is in sync.SyncLoop. No change handlers (on.create/update) are used, so kopf
keeps no per-object progress or diff-base annotations and an idle object sees no writes at all.
"""

from __future__ import annotations

from typing import Any

import base64

import kopf

from appconfig_sync import GROUP, PLURAL, VERSION
from appconfig_sync.objects import MANAGED_BY
from appconfig_sync.render import data_hash
from appconfig_sync.sync import SyncLoop
from appconfig_sync.targets import Kind

MANAGED_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Our resources are known: no namespace or CRD scanning, so a namespaced install needs no cluster-wide
    # list permissions (and starts without retrying forbidden lists).
    settings.scanning.disabled = True
    # Watch only the ConfigMaps we manage (server-side), so memory does not grow with the cluster's ConfigMaps.
    settings.watching.label_selectors["v1", "configmaps"] = MANAGED_SELECTOR
    settings.watching.label_selectors["v1", "secrets"] = MANAGED_SELECTOR
    # Reconnect watches regularly; a silently stalled stream is caught by kopf's inactivity timeout.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60


@kopf.index("", "v1", "configmaps", labels=MANAGED_BY)
def target_configmaps(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], str]:
    """The data hash each managed ConfigMap holds now: lets the idle loop see a manual edit without a request."""
    return {(namespace, name): data_hash(body.get("data") or {})}


@kopf.index("", "v1", "secrets", labels=MANAGED_BY)
def target_secrets(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], str]:
    """The same for managed Secrets; only the hash is kept in memory, never the values."""
    data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (body.get("data") or {}).items()}
    return {(namespace, name): data_hash(data)}


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_backoff=5, cancellation_timeout=10)
async def sync(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, stopped: kopf.DaemonStopped,
    target_configmaps: kopf.Index, target_secrets: kopf.Index, **_: Any,
) -> None:
    indexes = {"ConfigMap": target_configmaps, "Secret": target_secrets}

    def target_hash(kind: Kind, namespace: str, name: str) -> str | None:
        return next(iter(indexes[kind].get((namespace, name), [])), None)

    await SyncLoop(body, memo["kube"], logger, target_hash, memo["azure"]).run(stopped)
