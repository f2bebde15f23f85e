"""Prometheus metrics: what the operator did, counted where it happened.

Every metric is documented in docs/operations.md. Labels stay bounded: results, reasons, operations, HTTP
statuses and kinds are small fixed sets; only the last-success gauge carries namespace/name, because an
alert on one stale object needs to name it (and it is removed when the object's daemon stops).
"""

from __future__ import annotations

import re
import time
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

SYNCS = Counter(
    "appconfig_sync_syncs_total",
    "Sync passes by result: synced (the target was made to match a fresh load or a detected change), "
    "unchanged (the periodic check found nothing new), failed (reason = the Ready reason).",
    ["result", "reason"],
)
STORE_REQUESTS = Counter(
    "appconfig_sync_store_requests_total",
    "HTTP requests sent to App Configuration stores, each retry counted, by operation and HTTP status "
    "(status=\"error\" when no response came back).",
    ["operation", "status"],
)
SYNC_DURATION = Histogram(
    "appconfig_sync_sync_duration_seconds",
    "Duration of sync passes that did work: a full load, or a check that found a change; idle checks are not "
    "observed.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
OBJECTS = Gauge("appconfig_sync_objects", "AppConfigSync objects this replica runs, by Ready state.", ["ready"])
LAST_SUCCESS = Gauge(
    "appconfig_sync_last_success_timestamp_seconds",
    "Unix time of the last pass that found the target in step with the store (idle checks included).",
    ["namespace", "name"],
)
ROLLOUTS = Counter("appconfig_sync_rollouts_total", "Workloads rolled because their configuration changed.", ["kind"])
TARGET_WRITES = Counter(
    "appconfig_sync_target_writes_total", "Creates and updates of target objects.", ["kind", "operation"]
)
LEADER = Gauge(
    "appconfig_sync_leader", "1 while this replica holds the leader Lease (or runs without leader election)."
)

# Ready state per object, so the gauge can be recomputed when an object changes state or goes away.
_ready: dict[tuple[str, str], bool] = {}


def record_pass(namespace: str, name: str, outcome: Any, started: float) -> None:
    """Count one SyncLoop pass. `outcome` is a status.Outcome, or None for an idle check that found nothing."""
    now = time.time()
    if outcome is None:
        # An idle pass is a healthy one (a failure always yields an outcome); it is also the first pass of an
        # object resumed after a restart, which must be counted as ready too.
        SYNCS.labels(result="unchanged", reason="").inc()
        LAST_SUCCESS.labels(namespace=namespace, name=name).set(now)
        _set_ready(namespace, name, True)
        return
    SYNC_DURATION.observe(time.monotonic() - started)
    if outcome.ready:
        SYNCS.labels(result="synced", reason=outcome.reason).inc()
        LAST_SUCCESS.labels(namespace=namespace, name=name).set(now)
    else:
        SYNCS.labels(result="failed", reason=outcome.reason).inc()
    _set_ready(namespace, name, bool(outcome.ready))


def _set_ready(namespace: str, name: str, ready: bool) -> None:
    if _ready.get((namespace, name)) == ready:
        return  # the common idle case: recounting all objects on every pass would be O(objects) each time
    _ready[namespace, name] = ready
    _refresh_objects()


def forget(namespace: str, name: str) -> None:
    """The object's daemon stopped (deleted, or this replica stops): drop its per-object series."""
    _ready.pop((namespace, name), None)
    _refresh_objects()
    try:
        LAST_SUCCESS.remove(namespace, name)
    except KeyError:
        pass


def _refresh_objects() -> None:
    ready = sum(_ready.values())
    OBJECTS.labels(ready="true").set(ready)
    OBJECTS.labels(ready="false").set(len(_ready) - ready)


_refresh_objects()  # both series exist from the start (0 on a standby), so dashboards need no absent()


def target_written(kind: str, created: bool) -> None:
    TARGET_WRITES.labels(kind=kind, operation="create" if created else "update").inc()


def rolled(kind: str) -> None:
    ROLLOUTS.labels(kind=kind).inc()


# App Configuration data-plane paths -> a small set of operation names (keys never become labels).
_OPERATIONS = [
    (re.compile(r"^/kv/[^/]+$"), "get_setting"),  # one key: the sentinel / watched-key check
    (re.compile(r"^/kv/?$"), "list_settings"),  # a selector page (settings or feature flags)
    (re.compile(r"^/snapshots/[^/]+$"), "get_snapshot"),
    (re.compile(r"^/keys/?$"), "list_keys"),
    (re.compile(r"^/labels/?$"), "list_labels"),
    (re.compile(r"^/revisions/?$"), "list_revisions"),
]


def operation_of(method: str, path: str) -> str:
    """The operation label for a request; `other` for anything unrecognised, to keep the label bounded."""
    for pattern, operation in _OPERATIONS:
        if pattern.match(path):
            return operation if method.upper() in ("GET", "HEAD") else "other"
    return "other"


class StoreRequestCounter(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Counts each HTTP request the SDK sends, retries included.

    Pass it as a per-retry policy (`open_store(..., per_retry_policies=[STORE_REQUEST_COUNTER])`): a per-call
    policy would see one request per call, hiding retries.
    """

    def __init__(self, counter: Counter = STORE_REQUESTS) -> None:
        self._counter = counter

    def _operation(self, request: PipelineRequest) -> str:  # type: ignore[type-arg]
        http = request.http_request
        path = re.sub(r"^https?://[^/]+", "", http.url).split("?", 1)[0]
        return operation_of(http.method, path)

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:  # type: ignore[type-arg]
        status = str(response.http_response.status_code)
        self._counter.labels(operation=self._operation(request), status=status).inc()

    def on_exception(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        self._counter.labels(operation=self._operation(request), status="error").inc()


STORE_REQUEST_COUNTER = StoreRequestCounter()


def serve(port: int, address: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> None:
    """Serve /metrics (any path, in fact) from a daemon thread; port 0 means no metrics endpoint."""
    if port:
        start_http_server(port, addr=address, registry=registry)
