"""The tutorial's scenario, end to end: the store, the operator, the ConfigMap and the rollout it causes."""

from __future__ import annotations

import time

import pytest

from appconfig_sync.emulator.server import EmulatorServer

from e2e_support import Audit, Kube, put, wait_for

pytestmark = pytest.mark.cluster


def test_sentinel_change_reloads_and_rolls_the_deployment(
    kube: Kube, store, emulator: EmulatorServer, start_operator
) -> None:
    put(store, "message", "Hello World!")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.deployment("web", "web-config")
    kube.app_sync("web")
    operator = start_operator()

    wait_for(lambda: kube.data("web-config") == {"message": "Hello World!", "Sentinel": "1"}, what="first sync")
    wait_for(lambda: (kube.ready("web") or {}).get("status") == "True", what="Ready")
    first_replica_sets = wait_for(lambda: kube.replica_sets("web"))
    assert len(first_replica_sets) == 1, "the first sync must not roll the workload"

    # Changing a value without the sentinel is invisible for several intervals (1s each).
    put(store, "message", "Hello World Refreshed!")
    time.sleep(4)
    assert kube.data("web-config")["message"] == "Hello World!"

    put(store, "Sentinel", "2")
    wait_for(lambda: kube.data("web-config") == {"message": "Hello World Refreshed!", "Sentinel": "2"},
             timeout=1 + 10, what="refreshed data within one interval plus a margin")
    rolled = wait_for(lambda: len(kube.replica_sets("web")) == 2 and kube.replica_sets("web"), what="new ReplicaSet")
    assert set(first_replica_sets) < set(rolled)

    etag = store.get_configuration_setting("Sentinel").etag
    wait_for(lambda: kube.sync("web")["status"].get("sentinelETag") == etag, what="status.sentinelETag")
    table = kube.cluster.kubectl("-n", kube.namespace, "get", "acs").stdout
    assert "web" in table and "True" in table and "Synced" in table
    reasons = {(e.involved_object.kind, e.reason) for e in kube.events()}
    assert ("Deployment", "ConfigChanged") in reasons and ("AppConfigSync", "RolledOut") in reasons
    secret = emulator.connection_string.split("Secret=", 1)[1]
    assert secret not in operator.log and "Hello World" not in operator.log  # neither credentials nor values logged


def test_idle_is_one_conditional_request_per_interval_and_no_kubernetes_writes(
    kube: Kube, store, emulator: EmulatorServer, start_operator, audit: Audit
) -> None:
    put(store, "message", "hello")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.app_sync("web", refresh={"interval": "2s", "sentinel": {"key": "Sentinel"}})
    start_operator()
    wait_for(lambda: (kube.ready("web") or {}).get("status") == "True", what="Ready")
    time.sleep(3)  # let the status write's own watch event settle

    emulator.request_log.clear()
    mark = audit.mark()
    window = 10.0
    time.sleep(window)
    records = emulator.request_log.records()
    writes = audit.operator_writes(mark)

    assert writes == [], f"an idle object must cause no Kubernetes writes, saw {writes}"
    assert records, "the operator must check the store while idle"
    assert all(r.route == "kv-item" and r.conditional and r.status == 304 for r in records), records
    # At most one check per interval (the property that matters); the lower bound only shows it keeps checking.
    assert 2 <= len(records) <= window / 2 + 1, f"{len(records)} checks in {window}s at a 2s interval"


def test_operator_restart_writes_nothing_loads_nothing_and_still_follows_the_sentinel(
    kube: Kube, store, emulator: EmulatorServer, start_operator, audit: Audit
) -> None:
    put(store, "message", "hello")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.deployment("web", "web-config")
    kube.app_sync("web")
    first = start_operator()
    wait_for(lambda: (kube.ready("web") or {}).get("status") == "True", what="Ready")
    put(store, "message", "changed")
    put(store, "Sentinel", "2")
    wait_for(lambda: len(kube.replica_sets("web")) == 2, what="a rollout before the restart")
    etag = store.get_configuration_setting("Sentinel").etag
    wait_for(lambda: kube.sync("web")["status"].get("sentinelETag") == etag, what="status after the change")
    first.stop()

    mark = audit.mark()
    emulator.request_log.clear()
    start_operator()
    wait_for(lambda: emulator.request_log.count(route="kv-item", status=304) >= 3, what="the restarted operator's checks")
    assert audit.operator_writes(mark, kube.namespace) == []
    assert len(kube.replica_sets("web")) == 2
    requests = emulator.request_log.records()
    assert all(r.route == "kv-item" and r.conditional and r.status == 304 for r in requests), (
        "status showed the targets current for an unchanged sentinel: the restart must not reload the store", requests)

    put(store, "message", "after the restart")
    put(store, "Sentinel", "3")
    wait_for(lambda: (kube.data("web-config") or {}).get("message") == "after the restart", what="sync after restart")
    wait_for(lambda: len(kube.replica_sets("web")) == 3, what="the rollout after the restart")


def test_changes_made_while_the_operator_was_down_are_picked_up_after_a_restart(
    kube: Kube, store, emulator: EmulatorServer, start_operator
) -> None:
    put(store, "message", "hello")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.app_sync("web")
    operator = start_operator()
    wait_for(lambda: (kube.ready("web") or {}).get("status") == "True", what="Ready")
    operator.stop()

    put(store, "message", "changed while down")
    put(store, "Sentinel", "2")
    operator = start_operator()
    wait_for(lambda: kube.data("web-config") == {"message": "changed while down", "Sentinel": "2"},
             what="a sentinel change made while the operator was down")
    wait_for(lambda: kube.sync("web")["status"].get("sentinelETag") == store.get_configuration_setting("Sentinel").etag)
    operator.stop()

    kube.core.patch_namespaced_config_map("web-config", kube.namespace, {"data": {"message": "edited while down"}})
    start_operator()
    wait_for(lambda: kube.data("web-config") == {"message": "changed while down", "Sentinel": "2"},
             what="a manual edit made while the operator was down, undone")
