"""Kubernetes Events, so `kubectl describe` tells users what happened and why."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from kubernetes import client
from kubernetes.client.rest import ApiException

from appconfig_sync.objects import ObjectRef

COMPONENT = "appconfig-sync"
logger = logging.getLogger(__name__)


def record(core: client.CoreV1Api, about: ObjectRef, type_: str, reason: str, message: str) -> None:
    """Post an Event; failing to post one never fails a sync (it is only a report)."""
    now = dt.datetime.now(dt.timezone.utc)
    body = {
        "metadata": {"name": f"{about.name}.{uuid.uuid4().hex[:16]}", "namespace": about.namespace},
        "involvedObject": {
            "apiVersion": about.api_version,
            "kind": about.kind,
            "name": about.name,
            "namespace": about.namespace,
            "uid": about.uid,
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now.isoformat(),
        "lastTimestamp": now.isoformat(),
        "count": 1,
    }
    try:
        core.create_namespaced_event(about.namespace, body)
    except ApiException as exc:
        logger.warning("could not post Event %s on %s: HTTP %s %s", reason, about, exc.status, exc.reason)
