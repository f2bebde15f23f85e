"""What the provider reads besides plain key-values, and the ways a reload is triggered: feature flags, snapshots,
watch-all refresh (no sentinel) and the on-demand annotation."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from azure.appconfiguration import ConfigurationSettingsFilter, FeatureFlagConfigurationSetting

from appconfig_sync.emulator.server import EmulatorServer
from e2e_support import Audit, Kube, put, wait_for

pytestmark = pytest.mark.cluster


def ready(kube: Kube, name: str = "web") -> dict:
    return kube.ready(name) or {}


def wait_ready(kube: Kube, name: str = "web") -> dict:
    return wait_for(lambda: ready(kube, name).get("status") == "True" and ready(kube, name), what=f"{name} Ready")


def flags_in(kube: Kube, name: str = "web-config", file_name: str = "settings.json") -> dict | None:
    data = kube.data(name)
    if not data or file_name not in data:
        return None
    return json.loads(data[file_name])


def test_feature_flags_in_a_json_target_and_a_flag_change(
    kube: Kube, store, emulator: EmulatorServer, start_operator
) -> None:
    put(store, "app:title", "Shop")
    put(store, "Sentinel", "1")
    store.set_configuration_setting(FeatureFlagConfigurationSetting("Beta", enabled=False, description="beta UI"))
    store.set_configuration_setting(FeatureFlagConfigurationSetting("Checkout", enabled=True))
    kube.connection_secret(emulator.connection_string)
    kube.app_sync(
        "web",
        selectors=[{"keyFilter": "app:*"}],
        trimKeyPrefixes=["app:"],
        featureFlags={"selectors": [{"keyFilter": "*"}]},
        target={"configMap": {"name": "web-config", "format": "json", "fileName": "settings.json"}},
    )
    start_operator()

    document = wait_for(lambda: flags_in(kube), what="the json file")
    assert document["title"] == "Shop"
    flags = {f["id"]: f for f in document["feature_management"]["feature_flags"]}
    assert set(flags) == {"Beta", "Checkout"}, document
    assert flags["Beta"]["enabled"] is False and flags["Checkout"]["enabled"] is True
    assert not any(k.startswith(".appconfig") for k in document), "flags appear only under feature_management"
    assert wait_ready(kube) and kube.sync("web")["status"].get("featureFlagCount") == 2

    # Flags are watched by their own page ETags: no sentinel change is needed.
    store.set_configuration_setting(FeatureFlagConfigurationSetting("Beta", enabled=True, description="beta UI"))

    def beta_enabled() -> bool:
        document = flags_in(kube) or {}
        return any(f["id"] == "Beta" and f["enabled"] is True
                   for f in document.get("feature_management", {}).get("feature_flags", []))

    wait_for(beta_enabled, what="the flag change")
    assert (flags_in(kube) or {}).get("title") == "Shop"


def test_snapshot_selector_syncs_the_snapshots_content(
    kube: Kube, store, emulator: EmulatorServer, start_operator
) -> None:
    put(store, "app:color", "blue")
    put(store, "app:size", "L")
    put(store, "other", "not in the snapshot")
    put(store, "Sentinel", "1")
    store.begin_create_snapshot("release-1", [ConfigurationSettingsFilter(key="app:*")]).result()
    put(store, "app:color", "red")  # after the snapshot: must not show
    kube.connection_secret(emulator.connection_string)
    kube.app_sync("web", selectors=[{"snapshotName": "release-1"}], trimKeyPrefixes=["app:"])
    start_operator()

    assert wait_for(lambda: kube.data("web-config"), what="snapshot synced") == {"color": "blue", "size": "L"}
    wait_ready(kube)
    assert any("snapshot=release-1" in r.path for r in emulator.request_log.records(route="kv", status=200))

    # A reload (the sentinel changed) reads the snapshot again: later edits of its keys still do not show.
    put(store, "app:size", "XL")
    emulator.request_log.clear()
    put(store, "Sentinel", "2")
    wait_for(lambda: any("snapshot=release-1" in r.path for r in emulator.request_log.records(route="kv", status=200)),
             what="the reload after the sentinel change")
    time.sleep(1)
    assert kube.data("web-config") == {"color": "blue", "size": "L"}
    assert ready(kube).get("status") == "True"


def test_watch_all_picks_up_any_selected_key_and_only_checks_pages_while_idle(
    kube: Kube, store, emulator: EmulatorServer, start_operator, audit: Audit
) -> None:
    put(store, "app:a", "1")
    put(store, "app:b", "1")
    put(store, "unselected", "1")
    kube.connection_secret(emulator.connection_string)
    kube.app_sync("web", selectors=[{"keyFilter": "app:*"}], refresh={"interval": "1s"})  # no sentinel
    start_operator()
    wait_for(lambda: kube.data("web-config") == {"app_a": "1", "app_b": "1"}, what="first sync")
    wait_ready(kube)
    time.sleep(2)  # let the status write's own watch event settle

    emulator.request_log.clear()
    mark = audit.mark()
    time.sleep(6)
    records = emulator.request_log.records()
    assert records, "the operator must check the store while idle"
    assert all(r.route == "kv" and r.conditional and r.status == 304 for r in records), records
    assert audit.operator_writes(mark, kube.namespace) == []

    put(store, "unselected", "2")  # outside the selection: nothing to do
    put(store, "app:b", "2")  # any selected key, no sentinel
    wait_for(lambda: kube.data("web-config") == {"app_a": "1", "app_b": "2"}, what="a change of app:b")
    put(store, "app:a", "2")
    wait_for(lambda: kube.data("web-config") == {"app_a": "2", "app_b": "2"}, what="a change of app:a")
    put(store, "app:c", "new")  # a new key in a selected page changes its ETag too
    wait_for(lambda: kube.data("web-config") == {"app_a": "2", "app_b": "2", "app_c": "new"}, what="a new key")


def test_on_demand_annotation_reloads_without_a_sentinel_change(
    kube: Kube, store, emulator: EmulatorServer, start_operator
) -> None:
    put(store, "message", "hello")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    # A long interval: only the annotation can make the change visible within the test.
    kube.app_sync("web", refresh={"interval": "1h", "sentinel": {"key": "Sentinel"}})
    start_operator()
    wait_for(lambda: kube.data("web-config") == {"message": "hello", "Sentinel": "1"}, what="first sync")
    wait_ready(kube)
    generation = kube.sync("web")["metadata"]["generation"]

    put(store, "message", "changed")  # the sentinel stays
    time.sleep(2)
    assert kube.data("web-config")["message"] == "hello"
    requested = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    kube.cluster.kubectl("-n", kube.namespace, "annotate", "acs", "web",
                         f"appconfigsync.dev/refresh-requested-at={requested}", "--overwrite")
    wait_for(lambda: kube.data("web-config") == {"message": "changed", "Sentinel": "1"}, timeout=15,
             what="the requested reload within seconds")
    wait_for(lambda: kube.sync("web").get("status", {}).get("lastRefreshRequest") == requested,
             what="status.lastRefreshRequest")
    obj = kube.sync("web")
    assert obj["metadata"]["generation"] == generation, "an annotation is not a spec change"
    assert ready(kube)["reason"] == "Synced"

    # Without a new request nothing reloads; a new value (any string) is a new request.
    put(store, "message", "again")
    time.sleep(3)
    assert kube.data("web-config")["message"] == "changed"
    kube.cluster.kubectl("-n", kube.namespace, "annotate", "acs", "web",
                         "appconfigsync.dev/refresh-requested-at=second", "--overwrite")
    wait_for(lambda: kube.data("web-config")["message"] == "again", timeout=15, what="the second request")
