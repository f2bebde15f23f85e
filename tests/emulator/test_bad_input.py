"""Bad input gets the service's status and a problem+json body; the emulator keeps serving and keeps its data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure.appconfiguration import AzureAppConfigurationClient, ConfigurationSetting
from azure.core.exceptions import HttpResponseError

from appconfig_sync.emulator.server import EmulatorServer

Signed = Callable[..., Awaitable[Any]]  # the `signed` fixture
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "name"),
    [
        ("GET", "/nope", b"", 404, None),
        ("GET", "/kv?key=%2Aapp", b"", 400, "key"),
        ("GET", "/kv?key=a,b,c,d,e,f", b"", 400, "key"),
        ("GET", "/kv?label=a%5C", b"", 400, "label"),
        ("GET", "/kv?tags=novalue", b"", 400, "tags"),
        ("GET", "/kv?%24select=key,bogus", b"", 400, "$select"),
        ("GET", "/kv?snapshot=s&key=a", b"", 400, "snapshot"),
        ("GET", "/kv?after=%21%21", b"", 400, "After"),
        ("PUT", "/kv/k", b"{not json", 400, None),
        ("PUT", "/kv/k", b"[1, 2]", 400, None),
        ("PUT", "/kv/k", b'{"value": 5}', 400, "value"),
        ("PUT", "/kv/k", b'{"tags": {"a": 1}}', 400, "tags"),
        ("PUT", "/kv/a%25b", b'{"value": "v"}', 400, "key"),
        ("POST", "/kv", b"", 405, None),
        ("PATCH", "/kv/k", b"", 405, None),
        ("PUT", "/snapshots/s", b'{"filters": []}', 400, "filters"),
        ("PUT", "/snapshots/s", b'{"filters": [{"key": "*"}], "composition_type": "x"}', 400, "composition_type"),
        ("GET", "/operations", b"", 400, "snapshot"),
    ],
)
async def test_bad_requests_get_problem_json(
    signed: Signed, method: str, path: str, body: bytes, status: int, name: str | None
) -> None:
    answer = await signed(method, path, body=body, headers=JSON)
    assert answer.status == status
    assert answer.content_type == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == status and problem["type"].startswith("https://") and problem["title"]
    assert problem.get("name") == name
    assert (await signed("GET", "/kv")).status == 200  # still serving


async def test_wrong_content_type_and_huge_body(signed: Signed) -> None:
    assert (await signed("PUT", "/kv/k", body=b"v", headers={"Content-Type": "text/plain"})).status == 415
    huge = await signed("PUT", "/kv/k", body=b'{"value": "' + b"x" * (2 * 1024 * 1024) + b'"}', headers=JSON)
    assert huge.status == 413 and huge.content_type == "application/problem+json"


def test_oversized_value_is_413_and_the_old_value_stays(
    emulator: EmulatorServer, appconfig_client: AzureAppConfigurationClient
) -> None:
    appconfig_client.set_configuration_setting(ConfigurationSetting(key="big", value="small"))
    with pytest.raises(HttpResponseError) as refused:
        appconfig_client.set_configuration_setting(ConfigurationSetting(key="big", value="x" * 10_200, tags={"t": "y" * 50}))
    assert refused.value.status_code == 413
    assert "10240 bytes" in str(refused.value)
    assert appconfig_client.get_configuration_setting("big").value == "small"
    # Just under the limit (key + value) is fine.
    appconfig_client.set_configuration_setting(ConfigurationSetting(key="big", value="x" * (10 * 1024 - 3)))


async def test_handler_crash_is_a_500_not_a_dead_server(emulator: EmulatorServer, signed: Signed) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    emulator.store.list = explode  # type: ignore[method-assign]
    answer = await signed("GET", "/kv")
    assert answer.status == 500 and answer.json()["type"].endswith("internal-error")
    assert (await signed("GET", "/kv/missing")).status == 404
