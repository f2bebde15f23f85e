"""Store access: turn a spec into the provider's `load()` options, and provider errors into reasons."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from azure.appconfiguration import ConfigurationSetting, SecretReferenceConfigurationSetting
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
    keyvault: dict[str, Any] = field(default_factory=dict)  # the provider's Key Vault options, with credentials

    def __repr__(self) -> str:  # keep secrets out of any accidental repr
        return f"StoreAccess(endpoint={self.endpoint!r})"

    def credentials(self) -> list[Any]:
        found = [self.credential, self.keyvault.get("keyvault_credential")]
        found += [c.get("credential") for c in dict.values(self.keyvault.get("keyvault_client_configs") or {})]
        return [c for c in found if c is not None]

    async def close(self) -> None:
        for credential in {id(c): c for c in self.credentials()}.values():
            await credential.close()


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


class SecretReferences:
    """Which loaded keys are Key Vault references: their values go to the Secret, never to the ConfigMap.

    Fed by the provider's configuration_mapper, which sees every setting of a (re)load before it is stored.
    """

    def __init__(self, trim_prefixes: tuple[str, ...]) -> None:
        self._trim = sorted(trim_prefixes, key=len, reverse=True)  # the provider trims the longest match
        self.keys: dict[str, str] = {}  # rendered key -> the store's key
        self._pending: dict[str, str] | None = None

    async def mapper(self, setting: ConfigurationSetting) -> None:
        if self._pending is None:
            self._pending = {}
        if isinstance(setting, SecretReferenceConfigurationSetting):
            key = next((setting.key[len(p):] for p in self._trim if setting.key.startswith(p)), setting.key)
            self._pending[key] = setting.key

    def settle(self) -> None:
        """After a successful (re)load: what the mapper saw is now the truth."""
        if self._pending is not None:
            self.keys, self._pending = self._pending, None

    def discard(self) -> None:
        """Before a refresh: forget what a failed reload half-saw."""
        self._pending = None

    def split(self, loaded: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(plain settings, secret values). The provider's periodic secret refresh stores the fresh value under
        the untrimmed key, so that one wins, and neither form ever reaches the plain settings."""
        secret_forms = set(self.keys) | set(self.keys.values())
        plain = {k: v for k, v in loaded.items() if k not in secret_forms}
        secrets = {k: loaded.get(original, loaded.get(k)) for k, original in self.keys.items()}
        return plain, {k: v for k, v in secrets.items() if v is not None}


async def open_store(
    spec: AppConfigSyncSpec,
    access: StoreAccess,
    on_reload: Callable[[], None],
    references: SecretReferences,
    **extra: Any,
) -> AzureAppConfigurationProvider:
    """Load the selection once; the returned provider's refresh() then checks for changes."""
    options = {
        **provider_options(spec),
        **dict(access.client_options),
        **access.keyvault,
        **extra,
        "on_refresh_success": on_reload,
        "configuration_mapper": references.mapper,
    }
    if access.connection_string is not None:
        return await load(connection_string=access.connection_string, **options)
    return await load(access.endpoint, access.credential, **options)


def sentinel_etag(provider: AzureAppConfigurationProvider) -> str | None:
    """The sentinel's ETag as the provider last saw it ("" while the key does not exist), for status.

    The provider keeps it in a private mapping {(key, label): etag}; None when it has none (watch-all mode,
    or a provider version that stores it differently: status then just omits it).
    """
    watched = getattr(provider, "_watched_settings", None)
    if not isinstance(watched, Mapping) or len(watched) != 1:
        return None
    (etag,) = watched.values()
    return etag or ""


async def sentinel_unchanged(spec: AppConfigSyncSpec, access: StoreAccess, etag: str) -> bool:
    """One conditional GET of the sentinel: True when the store still has the version with `etag` (304)."""
    from azure.appconfiguration.aio import AzureAppConfigurationClient
    from azure.core import MatchConditions

    sentinel = spec.refresh.sentinel
    assert sentinel is not None
    options = {**dict(access.client_options), **SDK_RETRY}
    if access.connection_string is not None:
        client = AzureAppConfigurationClient.from_connection_string(access.connection_string, **options)
    else:
        client = AzureAppConfigurationClient(access.endpoint, access.credential, **options)
    async with client:
        current = await client.get_configuration_setting(
            sentinel.key, sentinel.label or NULL_LABEL, etag=etag, match_condition=MatchConditions.IfModified
        )
    return current is None


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


# Entra ID's error code and first sentence, e.g. "AADSTS7000215: Invalid client secret provided for application '...'".
_AADSTS = re.compile(r"AADSTS\d+:.*?(?=\.\s|\.?$|\s+Trace ID:)", re.MULTILINE)


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
    keyvault = _keyvault_failure(exc)
    if keyvault is not None:
        return keyvault
    entra = _AADSTS.search(str(exc)) if isinstance(exc, ClientAuthenticationError) else None
    if entra is not None:
        # The token request failed, not the store: Entra ID's code says which part of the identity is wrong.
        return Failure(
            "AuthenticationFailed",
            f"Microsoft Entra ID refused the identity ({scrub(entra.group(0))[:500]}): check its tenant, "
            "client ID, client secret or federated credential",
        )
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


def _keyvault_failure(exc: BaseException) -> Failure | None:
    """Errors of Key Vault (not of the store) get their own reason: the fix is in the vault or its access."""
    chain = [exc, exc.__cause__] if exc.__cause__ else [exc]
    for error in chain:
        request = getattr(getattr(error, "response", None), "request", None)
        if "/secrets/" in str(getattr(request, "url", "")):
            return Failure(
                "KeyVaultReferenceFailed",
                f"a Key Vault reference could not be resolved ({_short(error)}, {_secret_name(str(request.url))}); "
                "check that the secret exists and the identity in spec.keyVault may read it",
            )
    text = str(exc)
    if isinstance(exc, ValueError) and ("Key Vault" in text or "Secret Client" in text):
        return Failure(
            "KeyVaultReferenceFailed",
            "the selection holds Key Vault references the operator cannot resolve: set spec.target.secret "
            f"(and spec.keyVault for the identity to use) ({_short(exc)})",
        )
    return None


def _secret_name(url: str) -> str:
    path = url.split("?", 1)[0].split("/secrets/", 1)[1]
    return f"secret {path.split('/')[0]}"


def _short(exc: BaseException) -> str:
    if isinstance(exc, HttpResponseError) and exc.status_code:
        text = f"HTTP {exc.status_code} {exc.reason or ''}".strip()
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return scrub(text)[:500]
