"""What lands in the ConfigMap, who may own it, and what happens when things go wrong."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from appconfig_sync.emulator.server import EmulatorServer

from e2e_support import Kube, put, wait_for

pytestmark = pytest.mark.cluster


def ready(kube: Kube, name: str = "web") -> dict:
    return kube.ready(name) or {}


def test_formats_key_mapping_selectors_labels_and_trimming(
    kube: Kube, store, emulator: EmulatorServer, start_operator
) -> None:
    put(store, "app:db:host", "db.local")
    put(store, "app:db:host", "db.prod", label="prod")
    put(store, "app:db:port", "5432")
    put(store, "app:limits", '{"rps": 10, "burst": [1, 2]}', content_type="application/json")
    put(store, "other", "ignored")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    selectors = [{"keyFilter": "app:*"}, {"keyFilter": "app:*", "labelFilter": "prod"}]
    kube.app_sync("keys", selectors=selectors, target={"configMap": {"name": "keys-config"}})
    kube.app_sync("trimmed", selectors=selectors, trimKeyPrefixes=["app:"],
                  target={"configMap": {"name": "trimmed-config", "keyReplacement": "."}})
    kube.app_sync("json", selectors=selectors, trimKeyPrefixes=["app:"],
                  target={"configMap": {"name": "json-config", "format": "json", "fileName": "settings.json", "separator": ":"}})
    kube.app_sync("yaml", selectors=selectors,
                  target={"configMap": {"name": "yaml-config", "format": "yaml", "fileName": "settings.yaml"}})
    kube.app_sync("props", selectors=selectors, trimKeyPrefixes=["app:"],
                  target={"configMap": {"name": "props-config", "format": "properties", "fileName": "app.properties"}})
    start_operator()

    limits = '{"burst":[1,2],"rps":10}'
    # the later (prod) selector wins for app:db:host; ':' is mapped to the keyReplacement
    assert wait_for(lambda: kube.data("keys-config")) == {
        "app_db_host": "db.prod", "app_db_port": "5432", "app_limits": limits}
    assert wait_for(lambda: kube.data("trimmed-config")) == {"db.host": "db.prod", "db.port": "5432", "limits": limits}
    document = json.loads(wait_for(lambda: kube.data("json-config"))["settings.json"])
    assert document == {"db": {"host": "db.prod", "port": "5432"}, "limits": {"rps": 10, "burst": [1, 2]}}
    assert yaml.safe_load(wait_for(lambda: kube.data("yaml-config"))["settings.yaml"]) == {
        "app:db:host": "db.prod", "app:db:port": "5432", "app:limits": {"rps": 10, "burst": [1, 2]}}
    properties = wait_for(lambda: kube.data("props-config"))["app.properties"]
    assert properties.splitlines()[:2] == ["db\\:host=db.prod", "db\\:port=5432"]  # Java properties escaping
    for name in ("keys", "trimmed", "json", "yaml", "props"):
        wait_for(lambda: ready(kube, name).get("reason") == "Synced", what=f"{name} Ready")


def test_foreign_configmap_is_left_alone(kube: Kube, store, emulator: EmulatorServer, start_operator) -> None:
    put(store, "Sentinel", "1")
    kube.core.create_namespaced_config_map(kube.namespace, {"metadata": {"name": "web-config"}, "data": {"mine": "yes"}})
    kube.connection_secret(emulator.connection_string)
    kube.app_sync("web")
    start_operator()
    condition = wait_for(lambda: ready(kube).get("reason") == "TargetConflict" and ready(kube))
    assert condition["status"] == "False" and "web-config" in condition["message"]
    time.sleep(2)
    assert kube.data("web-config") == {"mine": "yes"}
    assert any(e.reason == "TargetConflict" and e.type == "Warning" for e in kube.events("web"))


def test_drift_is_undone_and_deletion_collects_the_configmap(
    kube: Kube, store, emulator: EmulatorServer, start_operator
) -> None:
    put(store, "message", "hello")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.deployment("web", "web-config")
    kube.app_sync("web")
    start_operator()
    wait_for(lambda: kube.data("web-config") == {"message": "hello", "Sentinel": "1"})

    kube.core.patch_namespaced_config_map("web-config", kube.namespace, {"data": {"message": "edited", "extra": "x"}})
    wait_for(lambda: kube.data("web-config") == {"message": "hello", "Sentinel": "1"}, timeout=10, what="edit undone")
    kube.core.delete_namespaced_config_map("web-config", kube.namespace)
    wait_for(lambda: kube.data("web-config") == {"message": "hello", "Sentinel": "1"}, timeout=10, what="recreated")
    assert len(kube.replica_sets("web")) == 1, "repairing drift is not a config change: no rollout"

    kube.cluster.kubectl("-n", kube.namespace, "delete", "acs", "web", "--wait=true", "--timeout=30s")
    # The garbage collector rediscovers API resources every 30 s, so a CRD installed moments ago may need that long.
    wait_for(lambda: kube.configmap("web-config") is None, timeout=90, what="garbage collection of the owned ConfigMap")


def test_store_outage_keeps_data_and_recovers(kube: Kube, store, emulator: EmulatorServer, start_operator) -> None:
    put(store, "message", "before")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.app_sync("web")
    operator = start_operator()
    wait_for(lambda: ready(kube).get("reason") == "Synced")

    emulator.faults.add(route="*", status=503, seconds=8)
    condition = wait_for(lambda: ready(kube).get("reason") == "StoreUnavailable" and ready(kube), timeout=30)
    assert condition["status"] == "False"
    assert kube.data("web-config") == {"message": "before", "Sentinel": "1"}, "last good data stays"
    assert [e for e in kube.events("web") if e.reason == "StoreUnavailable"], "a Warning Event on the failure"

    put(store, "message", "after")
    put(store, "Sentinel", "2")  # the store accepts writes again once the fault ends (the client retries)
    wait_for(lambda: ready(kube).get("reason") == "Synced", timeout=60, what="automatic recovery")
    wait_for(lambda: kube.data("web-config") == {"message": "after", "Sentinel": "2"}, timeout=30)
    warnings = [e for e in kube.events("web") if e.reason == "StoreUnavailable"]
    assert len(warnings) == 1, "the failure is reported once, not on every retry"
    assert emulator.connection_string.split("Secret=", 1)[1] not in operator.log


def test_missing_secret_is_reported_then_picked_up(kube: Kube, store, emulator: EmulatorServer, start_operator) -> None:
    put(store, "message", "hello")
    put(store, "Sentinel", "1")
    kube.app_sync("web")
    start_operator()
    condition = wait_for(lambda: ready(kube).get("reason") == "SecretNotFound" and ready(kube))
    assert "appconfig" in condition["message"] and "connectionString" in condition["message"]
    kube.connection_secret(emulator.connection_string)
    wait_for(lambda: kube.data("web-config") == {"message": "hello", "Sentinel": "1"}, timeout=15)
    # The ConfigMap is written before the status that reports it.
    status = wait_for(lambda: (s := kube.sync("web")["status"]).get("keyCount") == 2 and s, what="status after sync")
    assert emulator.connection_string not in json.dumps(status)
    assert status["observedGeneration"] == kube.sync("web")["metadata"]["generation"]


def test_colliding_keys_and_oversize_keep_the_old_data(
    kube: Kube, store, emulator: EmulatorServer, start_operator
) -> None:
    put(store, "a:b", "1")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.deployment("web", "web-config", how="envFrom")
    kube.app_sync("web")
    start_operator()
    wait_for(lambda: kube.data("web-config") == {"a_b": "1", "Sentinel": "1"})

    put(store, "a/b", "2")  # maps to a_b too
    put(store, "Sentinel", "2")
    condition = wait_for(lambda: ready(kube).get("reason") == "InvalidKeys" and ready(kube))
    assert "a:b" in condition["message"] and "a/b" in condition["message"]
    assert kube.data("web-config") == {"a_b": "1", "Sentinel": "1"}

    store.delete_configuration_setting("a/b")
    for i in range(120):  # a value may hold 10 KB in the store; 120 of 9 KB pass the 1 MiB ConfigMap limit
        put(store, f"big{i}", "x" * 9000)
    put(store, "Sentinel", "3")
    condition = wait_for(lambda: ready(kube).get("reason") == "TooLarge" and ready(kube))
    assert kube.data("web-config") == {"a_b": "1", "Sentinel": "1"}
    assert len(kube.replica_sets("web")) == 1, "a failed sync rolls nothing"


def test_rollout_opt_out_and_policy_never(kube: Kube, store, emulator: EmulatorServer, start_operator) -> None:
    put(store, "message", "one")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.deployment("rolls", "web-config", how="envFrom")
    kube.deployment("opted-out", "web-config", annotations={"appconfigsync.dev/rollout": "disabled"})
    kube.deployment("unrelated", "other-config")
    kube.deployment("never", "quiet-config")
    kube.app_sync("web")
    kube.app_sync("quiet", rollout={"policy": "Never"})
    start_operator()
    wait_for(lambda: kube.data("web-config") and kube.data("quiet-config"))
    for name in ("rolls", "opted-out", "unrelated", "never"):
        wait_for(lambda: kube.replica_sets(name), what=f"{name} first ReplicaSet")

    put(store, "message", "two")
    put(store, "Sentinel", "2")
    wait_for(lambda: len(kube.replica_sets("rolls")) == 2, what="the consumer rolls")
    wait_for(lambda: (kube.data("quiet-config") or {}).get("message") == "two")
    time.sleep(2)
    assert [len(kube.replica_sets(n)) for n in ("opted-out", "unrelated", "never")] == [1, 1, 1]
