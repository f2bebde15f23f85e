"""Fixtures for emulator tests: a fresh in-process emulator and real Azure SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from azure.appconfiguration import AzureAppConfigurationClient
from azure.appconfiguration.aio import AzureAppConfigurationClient as AsyncAzureAppConfigurationClient

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
