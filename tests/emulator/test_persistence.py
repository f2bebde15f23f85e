"""`--data FILE`: seeding, persistence across restarts, and a store safe under threads."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from azure.appconfiguration import AzureAppConfigurationClient, ConfigurationSetting, ConfigurationSettingsFilter

from appconfig_sync.emulator.hmac_auth import Credentials
from appconfig_sync.emulator.server import EmulatorServer
from appconfig_sync.emulator.filters import MATCH_ALL
from appconfig_sync.emulator.store import Selection, Store

EVERYTHING = Selection(MATCH_ALL, MATCH_ALL, [])


def client_for(server: EmulatorServer) -> AzureAppConfigurationClient:
    return AzureAppConfigurationClient.from_connection_string(server.connection_string, retry_total=0)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_restart_loses_nothing(tmp_path: Path, suffix: str) -> None:
    data = tmp_path / f"store{suffix}"
    credentials = Credentials.generate()
    with EmulatorServer(data=data, credentials=credentials) as server:
        client = client_for(server)
        client.set_configuration_setting(ConfigurationSetting(key="a", value="1", label="l", content_type="text/x",
                                                              tags={"t": "v"}))  # fmt: skip
        client.set_configuration_setting(ConfigurationSetting(key="a", value="2", label="l"))
        client.set_read_only(client.get_configuration_setting("a", label="l"), True)
        client.set_configuration_setting(ConfigurationSetting(key="gone", value="x"))
        client.delete_configuration_setting("gone")
        client.begin_create_snapshot("s1", filters=[ConfigurationSettingsFilter(key="*", label="l")]).result()
        before = client.get_configuration_setting("a", label="l")
        token = server.store.sync_token

    with EmulatorServer(data=data, credentials=credentials) as server:
        client = client_for(server)
        after = client.get_configuration_setting("a", label="l")
        assert (after.value, after.etag, after.read_only) == (before.value, before.etag, True)
        assert [s.key for s in client.list_configuration_settings()] == ["a"]
        assert [r.value for r in client.list_revisions(key_filter="a")] == ["2", "2", "1"]
        assert [s.value for s in client.list_configuration_settings(snapshot_name="s1")] == ["2"]
        assert server.store.sync_token == token


def test_seed_file_formats(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("greeting: hello\nlimits: {rps: 5}\n")
    store = Store(plain)
    assert store.get("greeting", None).value == "hello"
    assert json.loads(store.get("limits", None).value) == {"rps": 5}

    full = tmp_path / "full.json"
    full.write_text(json.dumps({"items": [
        {"key": "app.x", "label": "prod", "value": "1", "content_type": "application/json", "tags": {"a": "b"}},
        {"key": "app.y", "value": "2"},
    ]}))  # fmt: skip
    store = Store(full)
    kv = store.get("app.x", "prod")
    assert (kv.value, kv.content_type, kv.tags) == ("1", "application/json", {"a": "b"})
    store.put("app.z", None, value="3", content_type=None, tags={})
    written = json.loads(full.read_text())
    assert [i["key"] for i in written["items"]] == ["app.x", "app.y", "app.z"]

    broken = tmp_path / "broken.yaml"
    broken.write_text("items:\n  - value: no key\n")
    with pytest.raises(ValueError, match="broken.yaml.*'key'"):
        Store(broken)


def test_concurrent_writers_keep_every_change(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.json")

    def writer(n: int) -> None:
        for i in range(25):
            store.put(f"w{n}/{i}", None, value=str(i), content_type=None, tags={})
            store.put("shared", None, value=f"{n}-{i}", content_type=None, tags={})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reloaded = Store(tmp_path / "store.json")
    everything = reloaded.list(EVERYTHING)
    assert len(everything) == 8 * 25 + 1
    assert reloaded.sync_token.endswith(f";sn={8 * 25 * 2}")
    assert len(reloaded.revisions(EVERYTHING)) == 8 * 25 * 2
