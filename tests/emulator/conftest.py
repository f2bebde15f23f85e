"""Fixtures for emulator tests: a fresh in-process emulator and real Azure SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL
from azure.appconfiguration import AzureAppConfigurationClient
from azure.appconfiguration.aio import AzureAppConfigurationClient as AsyncAzureAppConfigurationClient

from appconfig_sync.emulator.hmac_auth import Credentials, sign
from appconfig_sync.emulator.server import EmulatorServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "emulator" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.emulator)


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    """An emulator on 127.0.0.1 (plain HTTP, HMAC from `emulator.connection_string`), empty, memory only."""
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def appconfig_client(emulator: EmulatorServer) -> Iterator[AzureAppConfigurationClient]:
    """The unmodified sync SDK client, from the emulator's connection string; it does not retry (fail fast)."""
    client = AzureAppConfigurationClient.from_connection_string(emulator.connection_string, retry_total=0)
    yield client
    client.close()


@pytest.fixture
async def async_appconfig_client(emulator: EmulatorServer) -> AsyncIterator[AsyncAzureAppConfigurationClient]:
    """The unmodified async SDK client (aiohttp transport, which signs a differently encoded URL)."""
    async with AsyncAzureAppConfigurationClient.from_connection_string(
        emulator.connection_string, retry_total=0
    ) as client:
        yield client


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDict[str]  # case-insensitive, like HTTP
    body: bytes
    content_type: str

    def json(self) -> Any:
        import json

        return json.loads(self.body)


Signed = Callable[..., Awaitable[Answer]]


@pytest.fixture
def signed(emulator: EmulatorServer) -> Signed:
    """`await signed(method, path, body=..., headers=...)`: a raw HMAC-signed request, for what the SDK will not send.

    `signed_path`, `signed_body`, `credentials` and `now` sign something other than what is sent.
    """

    async def send(
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        signed_path: str | None = None,
        signed_body: bytes | None = None,
        credentials: Credentials | None = None,
        now: datetime | None = None,
    ) -> Answer:
        # Sign the target as aiohttp will send it (it re-quotes, e.g. %2A becomes *), as the SDK's policy does.
        target = URL(emulator.endpoint + (signed_path or path)).raw_path_qs
        all_headers = sign(credentials or emulator.credentials, method=method, host=f"127.0.0.1:{emulator.port}",
                           path_and_query=target, body=body if signed_body is None else signed_body,
                           now=now)  # fmt: skip
        all_headers.update(headers or {})
        async with aiohttp.ClientSession() as session:
            async with session.request(method, emulator.endpoint + path, data=body, headers=all_headers) as response:
                return Answer(response.status, response.headers.copy(), await response.read(), response.content_type)

    return send
