"""The metrics endpoint, scraped after a first sync and a sentinel change, shows the counts that happened."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from appconfig_sync.emulator.server import EmulatorServer
from controlplane import free_port

from e2e_support import Kube, put, wait_for

pytestmark = pytest.mark.cluster


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict, metric: str, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def total(samples: dict, metric: str, **labels: str) -> float:
    """Sum over the series of `metric` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == metric and set(labels.items()) <= ls)


def test_metrics_count_syncs_store_requests_writes_and_rollouts(
    kube: Kube, store, emulator: EmulatorServer, start_operator
) -> None:
    put(store, "message", "hello")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.deployment("web", "web-config")
    kube.app_sync("web")
    port = free_port()
    started = time.time()
    operator = start_operator("--metrics-port", str(port))

    wait_for(lambda: (kube.ready("web") or {}).get("status") == "True", what="Ready")
    wait_for(lambda: kube.replica_sets("web"), what="the first ReplicaSet")
    put(store, "message", "changed")
    put(store, "Sentinel", "2")
    wait_for(lambda: (kube.data("web-config") or {}).get("message") == "changed", what="the sentinel change synced")
    wait_for(lambda: len(kube.replica_sets("web")) == 2, what="the rollout")

    def after_idle_checks() -> dict:
        """A scrape taken once a few idle checks have followed the change (1s interval)."""
        samples = scrape(port)
        return samples if sample(samples, "appconfig_sync_syncs_total", result="unchanged", reason="") >= 3 else {}

    samples = wait_for(after_idle_checks, what=f"metrics with 3 idle checks on port {port}: {operator.log[-2000:]}")

    # Exactly what happened to Kubernetes objects: one create, one update, one rollout.
    assert sample(samples, "appconfig_sync_target_writes_total", kind="ConfigMap", operation="create") == 1
    assert sample(samples, "appconfig_sync_target_writes_total", kind="ConfigMap", operation="update") == 1
    assert sample(samples, "appconfig_sync_rollouts_total", kind="Deployment") == 1

    # Passes: the first load and the reload were syncs; the idle checks in between were unchanged.
    assert sample(samples, "appconfig_sync_syncs_total", result="synced", reason="Synced") >= 2
    assert total(samples, "appconfig_sync_syncs_total", result="failed") == 0
    assert sample(samples, "appconfig_sync_sync_duration_seconds_count") >= 2
    assert sample(samples, "appconfig_sync_objects", ready="true") == 1
    assert sample(samples, "appconfig_sync_objects", ready="false") == 0
    last = sample(samples, "appconfig_sync_last_success_timestamp_seconds", namespace=kube.namespace, name="web")
    assert started < last <= time.time()
    assert sample(samples, "appconfig_sync_leader") == 1

    # Store requests: idle sentinel checks answered 304, the changed sentinel 200, and two full loads of the
    # selection (start and reload). The counts agree with what the emulator saw (within requests in flight).
    not_modified = sample(samples, "appconfig_sync_store_requests_total", operation="get_setting", status="304")
    assert not_modified >= 3
    assert sample(samples, "appconfig_sync_store_requests_total", operation="get_setting", status="200") >= 1
    assert sample(samples, "appconfig_sync_store_requests_total", operation="list_settings", status="200") >= 2
    seen = emulator.request_log.count(route="kv-item", method="GET", status=304)
    assert abs(seen - not_modified) <= 2, (seen, not_modified)
    assert total(samples, "appconfig_sync_store_requests_total", status="error") == 0
