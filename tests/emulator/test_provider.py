"""`azure.appconfiguration.provider.aio.load()` and `refresh()` against the emulator, watched through the request log."""

from __future__ import annotations

import asyncio
import json

from azure.appconfiguration import (
    AzureAppConfigurationClient,
    ConfigurationSetting,
    ConfigurationSettingsFilter,
    FeatureFlagConfigurationSetting,
)
from azure.appconfiguration.provider import SettingSelector, WatchKey
from azure.appconfiguration.provider.aio import load

from appconfig_sync.emulator.server import EmulatorServer

JSON_TYPE = "application/json"
SNAPSHOT_REF = 'application/json; profile="https://azconfig.io/mime-profiles/snapshot-ref"; charset=utf-8'


def put(client: AzureAppConfigurationClient, key: str, value: str, label: str | None = None, **kw: object) -> None:
    client.set_configuration_setting(ConfigurationSetting(key=key, value=value, label=label, **kw))


async def test_load_selectors_trim_json_and_feature_flags(
    emulator: EmulatorServer, appconfig_client: AzureAppConfigurationClient
) -> None:
    put(appconfig_client, "app.name", "base")
    put(appconfig_client, "app.name", "prod name", label="prod")
    put(appconfig_client, "app.limits", json.dumps({"rps": 5, "burst": [1, 2]}), content_type=JSON_TYPE)
    put(appconfig_client, "app.broken", "{not json", content_type=JSON_TYPE)
    put(appconfig_client, "other.x", "ignored")
    appconfig_client.set_configuration_setting(FeatureFlagConfigurationSetting("Beta", enabled=True))
    appconfig_client.set_configuration_setting(FeatureFlagConfigurationSetting("Off", enabled=False))

    config = await load(
        connection_string=emulator.connection_string,
        selects=[SettingSelector(key_filter="app.*"), SettingSelector(key_filter="app.*", label_filter="prod")],
        trim_prefixes=["app."],
        feature_flag_enabled=True,
    )
    try:
        assert config["name"] == "prod name"  # the later selector wins
        assert config["limits"] == {"rps": 5, "burst": [1, 2]}
        assert config["broken"] == "{not json"
        assert "other.x" not in config and "x" not in config
        flags = {f["id"]: f["enabled"] for f in config["feature_management"]["feature_flags"]}
        assert flags == {"Beta": True, "Off": False}
    finally:
        await config.close()


async def test_snapshot_selector_and_reference(
    emulator: EmulatorServer, appconfig_client: AzureAppConfigurationClient
) -> None:
    put(appconfig_client, "svc.color", "blue")
    put(appconfig_client, "svc.size", "L")
    appconfig_client.begin_create_snapshot("rel-1", filters=[ConfigurationSettingsFilter(key="svc.*")]).result()
    put(appconfig_client, "svc.color", "red")  # after the snapshot: not in it
    put(appconfig_client, "ref", json.dumps({"snapshot_name": "rel-1"}), content_type=SNAPSHOT_REF)

    from_snapshot = await load(connection_string=emulator.connection_string,
                               selects=[SettingSelector(snapshot_name="rel-1")])  # fmt: skip
    via_reference = await load(connection_string=emulator.connection_string,
                               selects=[SettingSelector(key_filter="ref")])  # fmt: skip
    try:
        assert dict(from_snapshot) == {"svc.color": "blue", "svc.size": "L"}
        assert via_reference["svc.color"] == "blue"
    finally:
        await from_snapshot.close()
        await via_reference.close()


async def test_refresh_with_sentinel(emulator: EmulatorServer, appconfig_client: AzureAppConfigurationClient) -> None:
    for i in range(150):  # two list pages
        put(appconfig_client, f"app.k{i:03}", f"v{i}")
    put(appconfig_client, "Sentinel", "1")
    reloads: list[int] = []
    config = await load(
        connection_string=emulator.connection_string,
        selects=[SettingSelector(key_filter="app.*")],
        refresh_on=[WatchKey("Sentinel")],
        refresh_interval=1,
        on_refresh_success=lambda: reloads.append(1),
    )
    try:
        put(appconfig_client, "app.k000", "changed but not yet visible")
        emulator.request_log.clear()
        await asyncio.sleep(1.1)
        await config.refresh()
        records = emulator.request_log.records()
        assert [(r.method, r.route, r.status, r.conditional) for r in records] == [("GET", "kv-item", 304, True)]
        assert records[0].path.startswith("/kv/Sentinel?")
        assert config["app.k000"] == "v0" and reloads == []

        put(appconfig_client, "Sentinel", "2")
        emulator.request_log.clear()
        await asyncio.sleep(1.1)
        await config.refresh()
        assert config["app.k000"] == "changed but not yet visible" and reloads == [1]
        assert emulator.request_log.count(route="kv-item", status=200) == 1
        assert emulator.request_log.count(route="kv", status=200) == 2  # every page of the selector again
    finally:
        await config.close()


async def test_refresh_without_watch_keys_uses_page_etags(
    emulator: EmulatorServer, appconfig_client: AzureAppConfigurationClient
) -> None:
    for i in range(150):
        put(appconfig_client, f"app.k{i:03}", f"v{i}")
    config = await load(connection_string=emulator.connection_string, selects=[SettingSelector(key_filter="app.*")],
                        refresh_enabled=True, refresh_interval=1)  # fmt: skip
    try:
        emulator.request_log.clear()
        await asyncio.sleep(1.1)
        await config.refresh()
        assert [(r.route, r.status, r.conditional) for r in emulator.request_log.records()] == [
            ("kv", 304, True),
            ("kv", 304, True),
        ]
        put(appconfig_client, "app.k149", "on the second page")
        await asyncio.sleep(1.1)
        await config.refresh()
        assert config["app.k149"] == "on the second page"
    finally:
        await config.close()
