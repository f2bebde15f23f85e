"""Metrics: the store request counter as an azure-core policy, pass accounting, and label hygiene."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.rest import HttpRequest
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from appconfig_sync import metrics


def value(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("GET", "/kv/Sentinel", "get_setting"),
        ("HEAD", "/kv/a%2Fb", "get_setting"),
        ("GET", "/kv", "list_settings"),
        ("GET", "/snapshots/release-1", "get_snapshot"),
        ("GET", "/keys", "list_keys"),
        ("PUT", "/kv/x", "other"),
        ("GET", "/somewhere/else", "other"),
    ],
)
def test_operation_of(method: str, path: str, operation: str) -> None:
    assert metrics.operation_of(method, path) == operation


def test_the_policy_counts_responses_by_status_and_failures_as_error() -> None:
    counter = Counter("t_store_requests_total", "t", ["operation", "status"], registry=(registry := CollectorRegistry()))
    policy = metrics.StoreRequestCounter(counter)
    request = PipelineRequest(HttpRequest("GET", "https://store.example/kv/Sentinel?label=%00&api-version=1"), None)  # type: ignore[arg-type]
    response = PipelineResponse(request.http_request, SimpleNamespace(status_code=304), None)  # type: ignore[arg-type]
    policy.on_response(request, response)
    policy.on_response(request, response)
    policy.on_exception(request)
    sample = lambda status: registry.get_sample_value("t_store_requests_total", {"operation": "get_setting", "status": status})  # noqa: E731
    assert sample("304") == 2
    assert sample("error") == 1


def test_record_pass_counts_results_and_tracks_ready_objects() -> None:
    ok = SimpleNamespace(ready=True, reason="Synced")
    bad = SimpleNamespace(ready=False, reason="StoreUnavailable")
    before_synced = value("appconfig_sync_syncs_total", result="synced", reason="Synced")
    before_failed = value("appconfig_sync_syncs_total", result="failed", reason="StoreUnavailable")
    before_unchanged = value("appconfig_sync_syncs_total", result="unchanged", reason="")

    metrics.record_pass("ns", "a", ok, 0.0)
    metrics.record_pass("ns", "b", bad, 0.0)
    metrics.record_pass("ns", "a", None, 0.0)

    assert value("appconfig_sync_syncs_total", result="synced", reason="Synced") == before_synced + 1
    assert value("appconfig_sync_syncs_total", result="failed", reason="StoreUnavailable") == before_failed + 1
    assert value("appconfig_sync_syncs_total", result="unchanged", reason="") == before_unchanged + 1
    assert value("appconfig_sync_objects", ready="true") >= 1
    assert value("appconfig_sync_objects", ready="false") >= 1
    assert value("appconfig_sync_last_success_timestamp_seconds", namespace="ns", name="a") > 0
    assert REGISTRY.get_sample_value("appconfig_sync_last_success_timestamp_seconds", {"namespace": "ns", "name": "b"}) is None

    metrics.forget("ns", "a")
    metrics.forget("ns", "b")
    assert REGISTRY.get_sample_value("appconfig_sync_last_success_timestamp_seconds", {"namespace": "ns", "name": "a"}) is None
    metrics.forget("ns", "a")  # twice is harmless


def test_every_metric_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    names = {m.name for m in REGISTRY.collect() if m.name.startswith("appconfig_sync_")}
    assert names, "no metrics registered"
    missing = sorted(n for n in names if f"`{n}" not in doc)
    assert not missing, f"undocumented metrics: {missing}"


def test_an_idle_pass_counts_the_object_as_ready() -> None:
    """After a restart an object may resume without any sync: its first pass is idle, and it is Ready."""
    metrics.forget("ns", "resumed")
    before = value("appconfig_sync_objects", ready="true")
    metrics.record_pass("ns", "resumed", None, 0.0)
    assert value("appconfig_sync_objects", ready="true") == before + 1
    metrics.forget("ns", "resumed")
