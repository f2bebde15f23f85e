"""The data plane through the real `azure-appconfiguration` client: CRUD, paging, filters, locks, conditions."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.appconfiguration import (
    AzureAppConfigurationClient,
    ConfigurationSetting,
    ConfigurationSettingsFilter,
    ResourceReadOnlyError,
)
from azure.appconfiguration.aio import AzureAppConfigurationClient as AsyncClient
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from appconfig_sync.emulator.server import EmulatorServer
from appconfig_sync.emulator.store import KeyValue


def put(client: AzureAppConfigurationClient, key: str, value: str, label: str | None = None, **kw: object) -> None:
    client.set_configuration_setting(ConfigurationSetting(key=key, value=value, label=label, **kw))


def test_set_get_list_delete(appconfig_client: AzureAppConfigurationClient) -> None:
    created = appconfig_client.set_configuration_setting(
        ConfigurationSetting(key="app/db url", label="prod", value="postgres://x", content_type="text/plain; v=1",
                             tags={"team": "core", "empty": None})  # fmt: skip
    )
    got = appconfig_client.get_configuration_setting("app/db url", label="prod")
    assert got is not None
    assert (got.key, got.label, got.value, got.content_type) == ("app/db url", "prod", "postgres://x", "text/plain; v=1")
    assert got.tags == {"team": "core", "empty": None}
    assert got.etag == created.etag and got.last_modified is not None and not got.read_only

    with pytest.raises(ResourceNotFoundError):
        appconfig_client.get_configuration_setting("app/db url")  # null label: a different key-value
    assert [s.key for s in appconfig_client.list_configuration_settings()] == ["app/db url"]

    deleted = appconfig_client.delete_configuration_setting("app/db url", label="prod")
    assert deleted is not None and deleted.value == "postgres://x"
    assert appconfig_client.delete_configuration_setting("app/db url", label="prod") is None  # 204
    assert list(appconfig_client.list_configuration_settings()) == []


def test_paging_over_250_keys(emulator: EmulatorServer, appconfig_client: AzureAppConfigurationClient) -> None:
    for i in range(260):
        put(appconfig_client, f"page/{i:03}", str(i))
    emulator.request_log.clear()
    keys = [s.key for s in appconfig_client.list_configuration_settings(key_filter="page/*")]
    assert keys == [f"page/{i:03}" for i in range(260)]
    assert [r.status for r in emulator.request_log.records(route="kv")] == [200, 200, 200]
    pages = list(appconfig_client.list_configuration_settings(key_filter="page/*").by_page())
    assert [len(list(p)) for p in pages] == [100, 100, 60]


def test_key_and_label_filters(appconfig_client: AzureAppConfigurationClient) -> None:
    for key in ("app.a", "app.b", "other.a", "a*b", "x,y"):
        put(appconfig_client, key, "none")
        put(appconfig_client, key, "prod", label="prod")
        put(appconfig_client, key, "dev", label="dev")

    def listed(key: str | None = None, label: str | None = None) -> list[tuple[str, str | None]]:
        return [(s.key, s.label) for s in appconfig_client.list_configuration_settings(key_filter=key, label_filter=label)]

    assert listed("app.*", "\0") == [("app.a", None), ("app.b", None)]
    assert listed("app.*,other.*", "prod") == [("app.a", "prod"), ("app.b", "prod"), ("other.a", "prod")]
    assert listed("app.a", "*") == [("app.a", None), ("app.a", "dev"), ("app.a", "prod")]
    assert listed("app.a", "pr*,\0") == [("app.a", None), ("app.a", "prod")]
    assert listed(r"a\*b", "dev") == [("a*b", "dev")]
    assert listed(r"x\,y", "dev") == [("x,y", "dev")]
    assert len(listed()) == 15
    assert sorted(label.name or "" for label in appconfig_client.list_labels()) == ["", "dev", "prod"]
    with pytest.raises(HttpResponseError) as bad:
        listed("*app")
    assert bad.value.status_code == 400


def test_tag_filters(appconfig_client: AzureAppConfigurationClient) -> None:
    put(appconfig_client, "t1", "1", tags={"env": "prod", "team": "a"})
    put(appconfig_client, "t2", "2", tags={"env": "prod", "team": "b"})
    put(appconfig_client, "t3", "3", tags={"env": "dev"})
    by_tags = lambda *tags: [s.key for s in appconfig_client.list_configuration_settings(tags_filter=list(tags))]  # noqa: E731
    assert by_tags("env=prod") == ["t1", "t2"]
    assert by_tags("env=prod", "team=b") == ["t2"]
    assert by_tags("env=qa") == []


def test_locks_refuse_writes(appconfig_client: AzureAppConfigurationClient) -> None:
    put(appconfig_client, "locked", "v1")
    setting = appconfig_client.set_read_only(appconfig_client.get_configuration_setting("locked"), True)
    assert setting.read_only
    with pytest.raises(ResourceReadOnlyError) as refused:
        put(appconfig_client, "locked", "v2")
    assert refused.value.status_code == 409
    with pytest.raises(HttpResponseError) as refused_delete:
        appconfig_client.delete_configuration_setting("locked")
    assert refused_delete.value.status_code == 409
    appconfig_client.set_read_only(setting, False)
    put(appconfig_client, "locked", "v2")
    assert appconfig_client.get_configuration_setting("locked").value == "v2"


def test_conditional_requests(appconfig_client: AzureAppConfigurationClient) -> None:
    first = appconfig_client.add_configuration_setting(ConfigurationSetting(key="cond", value="1"))
    with pytest.raises(ResourceExistsError):
        appconfig_client.add_configuration_setting(ConfigurationSetting(key="cond", value="again"))  # If-None-Match: *
    second = appconfig_client.set_configuration_setting(
        ConfigurationSetting(key="cond", value="2", etag=first.etag), match_condition=MatchConditions.IfNotModified
    )
    with pytest.raises(ResourceModifiedError) as stale:
        appconfig_client.set_configuration_setting(
            ConfigurationSetting(key="cond", value="3", etag=first.etag), match_condition=MatchConditions.IfNotModified
        )
    assert stale.value.status_code == 412
    # Unchanged since `second`: the SDK turns the 304 into None.
    assert appconfig_client.get_configuration_setting("cond", etag=second.etag,
                                                      match_condition=MatchConditions.IfModified) is None  # fmt: skip
    with pytest.raises(ResourceModifiedError):
        appconfig_client.delete_configuration_setting("cond", etag=first.etag, match_condition=MatchConditions.IfNotModified)
    assert appconfig_client.delete_configuration_setting(
        "cond", etag=second.etag, match_condition=MatchConditions.IfNotModified
    ).value == "2"


def test_revisions(appconfig_client: AzureAppConfigurationClient) -> None:
    for value in ("1", "2", "3"):
        put(appconfig_client, "rev", value, label="l")
    put(appconfig_client, "other", "x")
    appconfig_client.delete_configuration_setting("rev", label="l")
    revisions = list(appconfig_client.list_revisions(key_filter="rev", label_filter="l"))
    assert [r.value for r in revisions] == ["3", "2", "1"]
    assert len({r.etag for r in revisions}) == 3
    assert [r.key for r in appconfig_client.list_revisions()] == ["other", "rev", "rev", "rev"]
    only_values = list(appconfig_client.list_revisions(key_filter="rev", label_filter="l", fields=["value"]))
    assert [(r.key, r.value) for r in only_values] == [(None, "3"), (None, "2"), (None, "1")]


def test_snapshots(appconfig_client: AzureAppConfigurationClient) -> None:
    put(appconfig_client, "snap.a", "a0")
    put(appconfig_client, "snap.a", "a-prod", label="prod")
    put(appconfig_client, "snap.b", "b0")
    put(appconfig_client, "nosnap", "n")
    poller = appconfig_client.begin_create_snapshot(
        "release-1",
        filters=[ConfigurationSettingsFilter(key="snap.*"), ConfigurationSettingsFilter(key="snap.*", label="prod")],
        composition_type="key",
        retention_period=3600,
        tags={"release": "1"},
    )
    snapshot = poller.result()
    assert (snapshot.name, snapshot.status, snapshot.composition_type, snapshot.items_count) == (
        "release-1", "ready", "key", 2)  # fmt: skip
    put(appconfig_client, "snap.b", "changed later")
    items = {s.key: s.value for s in appconfig_client.list_configuration_settings(snapshot_name="release-1")}
    assert items == {"snap.a": "a-prod", "snap.b": "b0"}  # the later filter wins per key; frozen at creation
    assert [s.name for s in appconfig_client.list_snapshots()] == ["release-1"]
    assert appconfig_client.get_snapshot("release-1").tags == {"release": "1"}
    archived = appconfig_client.archive_snapshot("release-1")
    assert archived.status == "archived" and archived.expires is not None
    assert appconfig_client.recover_snapshot("release-1").status == "ready"
    with pytest.raises(ResourceExistsError):
        appconfig_client.begin_create_snapshot("release-1", filters=[ConfigurationSettingsFilter(key="*")]).result()
    with pytest.raises(ResourceNotFoundError):
        appconfig_client.get_snapshot("missing")


def test_sync_token_and_request_id_headers(appconfig_client: AzureAppConfigurationClient) -> None:
    seen: dict[str, str] = {}

    def capture(response: object) -> None:
        seen.update(response.http_response.headers)  # type: ignore[attr-defined]

    appconfig_client.set_configuration_setting(ConfigurationSetting(key="h", value="1"), raw_response_hook=capture)
    assert seen["Sync-Token"].endswith(";sn=1") and seen["x-ms-request-id"]
    assert seen["ETag"].startswith('"')


async def test_async_client_signs_and_reads(async_appconfig_client: AsyncClient) -> None:
    await async_appconfig_client.set_configuration_setting(ConfigurationSetting(key="a/b*c", value="v", label="x y"))
    listed = [s async for s in async_appconfig_client.list_configuration_settings(key_filter="a/*", label_filter="x*")]
    assert [(s.key, s.label) for s in listed] == [("a/b*c", "x y")]
    got = await async_appconfig_client.get_configuration_setting("a/b*c", label="x y")
    assert got is not None and got.value == "v"


def test_select_and_accept_datetime(appconfig_client: AzureAppConfigurationClient) -> None:
    put(appconfig_client, "t", "old")
    moment = appconfig_client.get_configuration_setting("t").last_modified
    time.sleep(0.01)
    put(appconfig_client, "t", "new")
    put(appconfig_client, "later", "x")
    past = list(appconfig_client.list_configuration_settings(accept_datetime=moment))
    assert [(s.key, s.value) for s in past] == [("t", "old")]
    assert appconfig_client.get_configuration_setting("t", accept_datetime=moment).value == "old"
    selected = list(appconfig_client.list_configuration_settings(key_filter="t", fields=["key", "value"]))
    assert [(s.key, s.value, s.etag, s.content_type) for s in selected] == [("t", "new", None, None)]


async def test_keys_and_head(emulator: EmulatorServer, signed: Any) -> None:
    emulator.store.seed([KeyValue("b"), KeyValue("a"), KeyValue("a", label="l"), KeyValue("c")])
    keys = await signed("GET", "/keys?name=a*,b")
    assert keys.json() == {"items": [{"name": "a"}, {"name": "b"}]}
    head = await signed("HEAD", "/kv/a")
    assert head.status == 200 and head.body == b"" and head.headers["ETag"].startswith('"')
