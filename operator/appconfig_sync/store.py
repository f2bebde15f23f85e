"""Store access: turn a spec into the provider's `load()` options, and provider errors into reasons."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.appconfiguration.provider import SettingSelector, WatchKey
from azure.appconfiguration.provider.aio import AzureAppConfigurationProvider, load
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from appconfig_sync.spec import AppConfigSyncSpec, Selector

NULL_LABEL = "\0"
# The operator paces refreshes itself (per object, with backoff); the provider's own timer only
# needs to let every call through.
PROVIDER_REFRESH_FLOOR = 1
# load() retries until this many seconds have passed; the operator retries on its own schedule.
STARTUP_TIMEOUT = 10
# Requests are retried by the SDK (honouring Retry-After) a few times before a pass fails.
SDK_RETRY = {"retry_total": 3, "retry_backoff_factor": 0.5, "retry_backoff_max": 30}


@dataclass(frozen=True)
class StoreAccess:
    """How to reach the store; built from Secrets and the spec, never logged."""

    connection_string: str | None = None
    endpoint: str | None = None
    credential: Any = None  # an azure.core AsyncTokenCredential, for endpoint access
    client_options: tuple[tuple[str, Any], ...] = ()  # e.g. connection_verify for a private CA

    def __repr__(self) -> str:  # keep secrets out of any accidental repr
        return f"StoreAccess(endpoint={self.endpoint!r})"

    async def close(self) -> None:
        if self.credential is not None:
            await self.credential.close()


def _selector(selector: Selector) -> SettingSelector:
    if selector.snapshot_name:
        return SettingSelector(snapshot_name=selector.snapshot_name)
    return SettingSelector(
        key_filter=selector.key_filter,
        label_filter=selector.label_filter or NULL_LABEL,
        tag_filters=list(selector.tag_filters) or None,
    )


def provider_options(spec: AppConfigSyncSpec) -> dict[str, Any]:
    """The `load()` keyword arguments that express the spec (without credentials or callbacks)."""
    options: dict[str, Any] = {
        "selects": [_selector(s) for s in spec.selectors],
        "trim_prefixes": list(spec.trim_key_prefixes),
        "refresh_interval": PROVIDER_REFRESH_FLOOR,
        "replica_discovery_enabled": spec.store.replica_discovery,
        "load_balancing_enabled": spec.store.load_balancing,
        "startup_timeout": STARTUP_TIMEOUT,
        **SDK_RETRY,
    }
    sentinel = spec.refresh.sentinel
    if sentinel is not None:
        options["refresh_on"] = [WatchKey(sentinel.key, sentinel.label or NULL_LABEL)]
    else:
        options["refresh_enabled"] = True  # no watch keys: every selected page is checked by ETag
    if spec.feature_flags is not None:
        options["feature_flag_enabled"] = True
        options["feature_flag_refresh_enabled"] = True
        if spec.feature_flags.selectors:
            options["feature_flag_selectors"] = [_selector(s) for s in spec.feature_flags.selectors]
    return options


async def open_store(
    spec: AppConfigSyncSpec, access: StoreAccess, on_reload: Callable[[], None], **extra: Any
) -> AzureAppConfigurationProvider:
    """Load the selection once; the returned provider's refresh() then checks for changes."""
    options = {**provider_options(spec), **dict(access.client_options), **extra, "on_refresh_success": on_reload}
    if access.connection_string is not None:
        return await load(connection_string=access.connection_string, **options)
    return await load(access.endpoint, access.credential, **options)


@dataclass(frozen=True)
class Failure:
    reason: str
    message: str
    retry_after: float | None = None


_SECRETS = [
    (re.compile(r"(Secret=)[^;\s\"']*", re.IGNORECASE), r"\1***"),
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(Signature=)[^&\s\"']*", re.IGNORECASE), r"\1***"),
]


def scrub(text: str) -> str:
    """Remove credentials from text that may end up in status, Events or logs."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _retry_after(exc: HttpResponseError) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("Retry-After", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None


def classify(exc: BaseException) -> Failure:
    """Map an error from load()/refresh() to a Ready reason and a message safe to show users."""
    if isinstance(exc, TimeoutError) and len(exc.args) > 1 and exc.args[1]:
        # load() gives up after STARTUP_TIMEOUT and carries the attempts' errors: the last one says why.
        return classify(exc.args[1][-1])
    if isinstance(exc, ClientAuthenticationError) or (
        isinstance(exc, HttpResponseError) and exc.status_code in (401, 403)
    ):
        return Failure(
            "AuthenticationFailed",
            f"the store refused our credentials ({_short(exc)}): check the connection string or identity",
        )
    if isinstance(exc, HttpResponseError) and exc.status_code == 429:
        return Failure("StoreThrottled", f"the store is throttling requests ({_short(exc)})", _retry_after(exc))
    if isinstance(exc, (HttpResponseError, ServiceRequestError, ServiceResponseError, TimeoutError, OSError)):
        retry = _retry_after(exc) if isinstance(exc, HttpResponseError) else None
        return Failure("StoreUnavailable", f"the store could not be reached or failed ({_short(exc)})", retry)
    if isinstance(exc, RuntimeError):
        # The provider raises a bare RuntimeError while every replica is backing off from a failure.
        return Failure("StoreUnavailable", "the store failed recently and is backing off; retrying")
    if isinstance(exc, ValueError):
        return Failure("InvalidStoreSettings", _short(exc))
    return Failure("SyncFailed", f"{type(exc).__name__}: {_short(exc)}")


def _short(exc: BaseException) -> str:
    if isinstance(exc, HttpResponseError) and exc.status_code:
        text = f"HTTP {exc.status_code} {exc.reason or ''}".strip()
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return scrub(text)[:500]
