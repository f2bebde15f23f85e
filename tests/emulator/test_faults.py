"""Injected faults are retried by the SDK as against Azure; the admin API drives them over HTTP."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from azure.appconfiguration import AzureAppConfigurationClient, ConfigurationSetting

from appconfig_sync.emulator.server import EmulatorServer

Signed = Callable[..., Awaitable[Any]]  # the `signed` fixture
JSON = {"Content-Type": "application/json"}


def retrying_client(emulator: EmulatorServer) -> AzureAppConfigurationClient:
    return AzureAppConfigurationClient.from_connection_string(
        emulator.connection_string, retry_total=4, retry_backoff_factor=0.05
    )


def test_429_with_retry_after_is_retried(emulator: EmulatorServer) -> None:
    client = retrying_client(emulator)
    client.set_configuration_setting(ConfigurationSetting(key="k", value="v"))
    emulator.faults.add(route="kv-item", status=429, retry_after=1, count=2)
    emulator.request_log.clear()
    assert client.get_configuration_setting("k").value == "v"
    records = emulator.request_log.records()
    assert [r.status for r in records] == [429, 429, 200]
    assert records[1].time - records[0].time >= 0.9  # Retry-After honoured


def test_503_is_retried_and_other_routes_are_untouched(emulator: EmulatorServer) -> None:
    client = retrying_client(emulator)
    emulator.faults.add(route="kv", status=503, count=2)
    client.set_configuration_setting(ConfigurationSetting(key="k", value="v"))  # kv-item: no fault
    assert [s.key for s in client.list_configuration_settings()] == ["k"]
    assert [r.status for r in emulator.request_log.records(route="kv")] == [503, 503, 200]


def test_dropped_connection_is_retried(emulator: EmulatorServer) -> None:
    client = retrying_client(emulator)
    client.set_configuration_setting(ConfigurationSetting(key="k", value="v"))
    emulator.faults.add(route="*", drop=True, count=1)
    assert client.get_configuration_setting("k").value == "v"
    assert [r.status for r in emulator.request_log.records(route="kv-item", method="GET")] == [0, 200]


def test_latency_then_normal_answer(emulator: EmulatorServer, appconfig_client: AzureAppConfigurationClient) -> None:
    emulator.faults.add(route="kv", latency_ms=300, count=1)
    list(appconfig_client.list_configuration_settings())
    (record,) = emulator.request_log.records(route="kv")
    assert record.status == 200 and record.duration_ms >= 300


async def test_admin_api(emulator: EmulatorServer, signed: Signed) -> None:
    added = await signed("POST", "/_emulator/faults", body=json.dumps({"route": "kv", "status": 500, "count": 1}).encode(),
                         headers=JSON)  # fmt: skip
    assert added.status == 201 and added.json()["status"] == 500
    listed = (await signed("GET", "/_emulator/faults")).json()["items"]
    assert [(f["route"], f["count"]) for f in listed] == [("kv", 1)]
    assert (await signed("GET", "/kv")).status == 500
    assert (await signed("GET", "/kv")).status == 200  # count used up

    await signed("POST", "/_emulator/faults", body=b'{"status": 503, "seconds": 30}', headers=JSON)
    assert (await signed("GET", "/kv")).status == 503
    assert (await signed("DELETE", "/_emulator/faults")).status == 204
    assert (await signed("GET", "/kv")).status == 200

    bad = await signed("POST", "/_emulator/faults", body=b'{"status": 404}', headers=JSON)
    assert bad.status == 400 and "is not one of" in bad.json()["detail"]

    requests = (await signed("GET", "/_emulator/requests?route=kv&status=503")).json()["items"]
    assert len(requests) == 1 and requests[0]["path"] == "/kv" and requests[0]["conditional"] is False
    assert (await signed("DELETE", "/_emulator/requests")).status == 204
    assert emulator.request_log.count(route="kv") == 0
