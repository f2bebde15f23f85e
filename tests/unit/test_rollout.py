"""Which workloads consume a target: every way a pod can read a ConfigMap or Secret."""

from __future__ import annotations

from typing import Any

import pytest

from appconfig_sync.rollout import Change, consumers, due_changes


def workload(pod: dict[str, Any], annotations: dict[str, str] | None = None, name: str = "w") -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"template": {"spec": pod}}}


@pytest.mark.parametrize(
    "pod",
    [
        {"volumes": [{"name": "v", "configMap": {"name": "cfg"}}], "containers": []},
        {"volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "cfg"}}]}}], "containers": []},
        {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]},
        {"containers": [{"name": "c", "env": [{"name": "E", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}]},
        {"containers": [], "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]},
    ],
    ids=["volume", "projected", "envFrom", "env-valueFrom", "initContainer"],
)
def test_configmap_references_are_found(pod: dict[str, Any]) -> None:
    assert len(list(consumers([workload(pod)], "ConfigMap", "cfg"))) == 1
    assert list(consumers([workload(pod)], "ConfigMap", "other")) == []
    assert list(consumers([workload(pod)], "Secret", "cfg")) == []


@pytest.mark.parametrize(
    "pod",
    [
        {"volumes": [{"name": "v", "secret": {"secretName": "sec"}}], "containers": []},
        {"volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": "sec"}}]}}], "containers": []},
        {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "sec"}}]}]},
        {"containers": [{"name": "c", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}}]}]},
    ],
    ids=["volume", "projected", "envFrom", "env-valueFrom"],
)
def test_secret_references_are_found(pod: dict[str, Any]) -> None:
    assert len(list(consumers([workload(pod)], "Secret", "sec"))) == 1
    assert list(consumers([workload(pod)], "ConfigMap", "sec")) == []


def test_a_workload_can_opt_out() -> None:
    pod = {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}
    assert list(consumers([workload(pod, {"appconfigsync.dev/rollout": "disabled"})], "ConfigMap", "cfg")) == []


def _consumer(annotations: dict[str, str]) -> dict[str, Any]:
    pod = {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "sec"}}]}]}
    body = workload(pod)
    body["spec"]["template"]["metadata"] = {"annotations": annotations}
    return body


def test_a_new_change_rolls_every_consumer_once_for_both_targets() -> None:
    changes = [Change("ConfigMap", "cfg", "h/config", "c2", new=True), Change("Secret", "sec", "h/secret", "s2", new=True)]
    assert due_changes(_consumer({}), changes) == tuple(changes)
    assert due_changes(_consumer({"h/config": "c2", "h/secret": "s2"}), changes) == ()


def test_without_a_new_change_only_stale_stamps_are_completed() -> None:
    current = [Change("ConfigMap", "cfg", "h/config", "c2", new=False)]
    assert due_changes(_consumer({}), current) == (), "the first sync rolls nothing"
    assert due_changes(_consumer({"h/config": "c1"}), current) == tuple(current), "an interrupted rollout completes"
