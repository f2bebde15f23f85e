"""HMAC-SHA256 is verified like the service: anything altered or stale is a 401, never a silent pass."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from azure.appconfiguration import AzureAppConfigurationClient
from azure.core.exceptions import ClientAuthenticationError

from appconfig_sync.emulator.hmac_auth import Credentials
from appconfig_sync.emulator.server import EmulatorServer

Signed = Callable[..., Awaitable[Any]]  # the `signed` fixture

JSON = {"Content-Type": "application/json"}


async def test_a_correct_signature_passes(signed: Signed) -> None:
    assert (await signed("PUT", "/kv/k?label=a", body=b'{"value": "v"}', headers=JSON)).status == 200
    assert (await signed("GET", "/kv?key=k")).status == 200


@pytest.mark.parametrize(
    "case",
    ["altered path", "altered query", "altered body", "stale date", "future date", "wrong secret", "wrong id"],
)
async def test_tampering_is_refused(emulator: EmulatorServer, signed: Signed, case: str) -> None:
    other_secret = Credentials(emulator.credentials.id, base64.b64encode(b"x" * 32).decode())
    kwargs: dict[str, object] = {
        "altered path": {"signed_path": "/kv/other?label=a"},
        "altered query": {"signed_path": "/kv/k?label=b"},
        "altered body": {"signed_body": b'{"value": "something else"}'},
        "stale date": {"now": datetime.now(timezone.utc) - timedelta(minutes=16)},
        "future date": {"now": datetime.now(timezone.utc) + timedelta(minutes=16)},
        "wrong secret": {"credentials": other_secret},
        "wrong id": {"credentials": Credentials("someone-else", emulator.credentials.secret)},
    }[case]
    response = await signed("PUT", "/kv/k?label=a", body=b'{"value": "v"}', headers=JSON, **kwargs)
    assert response.status == 401
    assert response.content_type == "application/problem+json"
    assert "WWW-Authenticate" in response.headers
    assert emulator.store.get("k", "a") is None


async def test_missing_or_foreign_authorization_is_refused(emulator: EmulatorServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(emulator.endpoint + "/kv") as response:
            assert response.status == 401
        async with session.get(emulator.endpoint + "/kv", headers={"Authorization": "Bearer abc.def.ghi"}) as response:
            assert response.status == 401  # no token issuer without --tls
            assert "Bearer" in response.headers["WWW-Authenticate"]
        async with session.get(emulator.endpoint + "/_emulator/requests") as response:
            assert response.status == 401  # the admin API is guarded too


def test_sdk_with_wrong_secret_gets_an_authentication_error(emulator: EmulatorServer) -> None:
    wrong = Credentials(emulator.credentials.id, base64.b64encode(b"not the secret").decode())
    client = AzureAppConfigurationClient.from_connection_string(wrong.connection_string(emulator.endpoint))
    with pytest.raises(ClientAuthenticationError) as refused:
        client.get_configuration_setting("anything")
    assert refused.value.status_code == 401
    assert emulator.credentials.secret not in str(refused.value)
