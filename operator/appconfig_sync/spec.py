"""The AppConfigSync spec as frozen dataclasses, parsed and checked the way the CRD checks it.

The API server validates objects against crds/appconfigsync.yaml, but `appconfig-sync render -f` reads files
offline, so parse_spec repeats every rule and default of the CRD (tests keep the two in step) and also rejects
unknown fields, which the API server would silently prune.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from appconfig_sync import KIND

# The same patterns as the CRD's: a change here must be made there too (test_spec checks they agree).
DURATION_PATTERN = r"^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$"
RESOURCE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
KEY_REPLACEMENT_PATTERN = r"^[-._a-zA-Z0-9]*$"
CLIENT_ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
HTTPS_URL_PATTERN = r"^https://[^/?#\s]+/?$"
TAG_FILTER_PATTERN = r"^[^=]+=.*$"
SEPARATORS = (".", ",", ";", "-", "_", "__", "/", ":")

MAX_SELECTORS = 20
MAX_TAG_FILTERS = 5
MAX_TRIM_PREFIXES = 20
MAX_VAULTS = 20
MIN_REFRESH_INTERVAL = timedelta(seconds=1)
MIN_SECRET_REFRESH_INTERVAL = timedelta(minutes=1)

DEFAULT_CONNECTION_STRING_KEY = "connectionString"
DEFAULT_REFRESH_INTERVAL = "30s"
DEFAULT_KEY_REPLACEMENT = "_"

_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]+(?:[.][0-9]+)?)(ns|us|ms|s|m|h)")


class SpecError(ValueError):
    """A spec the operator cannot use; `field` is its path (e.g. spec.store.endpoint), the message says the fix."""

    def __init__(self, field: str, message: str, obj: str = "") -> None:
        self.field = field
        self.message = message
        self.obj = obj
        prefix = f"{obj}: " if obj else ""
        super().__init__(f"{prefix}{field}: {message}")


class Format(StrEnum):
    KEYS = "keys"
    JSON = "json"
    YAML = "yaml"
    PROPERTIES = "properties"


class RolloutPolicy(StrEnum):
    ON_CHANGE = "OnChange"
    NEVER = "Never"


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True)
class WorkloadIdentity:
    """The operator pod's federated token; client_id None means the pod's AZURE_CLIENT_ID."""

    client_id: str | None = None


@dataclass(frozen=True)
class ManagedIdentity:
    """client_id None means the system-assigned identity."""

    client_id: str | None = None


@dataclass(frozen=True)
class ServicePrincipal:
    """A Secret in the object's namespace with azure_tenant_id, azure_client_id, azure_client_secret."""

    secret_name: str


Auth = WorkloadIdentity | ManagedIdentity | ServicePrincipal


@dataclass(frozen=True)
class Store:
    """Exactly one of connection_string / endpoint is set; auth is set exactly when endpoint is."""

    connection_string: SecretKeyRef | None
    endpoint: str | None
    auth: Auth | None
    replica_discovery: bool
    load_balancing: bool


@dataclass(frozen=True)
class Selector:
    """Either key_filter (with label/tag filters) or snapshot_name. label_filter None: settings without a label."""

    key_filter: str | None = None
    label_filter: str | None = None
    tag_filters: tuple[str, ...] = ()
    snapshot_name: str | None = None


@dataclass(frozen=True)
class WatchedKey:
    """An exact key and label; label None: the key without a label."""

    key: str
    label: str | None = None


@dataclass(frozen=True)
class Refresh:
    """sentinel None: watch every selected page by ETag."""

    interval: timedelta
    sentinel: WatchedKey | None


@dataclass(frozen=True)
class Target:
    """A ConfigMap or Secret and how settings become its data."""

    name: str
    format: Format = Format.KEYS
    file_name: str | None = None
    separator: str | None = None
    key_replacement: str = DEFAULT_KEY_REPLACEMENT


@dataclass(frozen=True)
class Targets:
    config_map: Target
    secret: Target | None


@dataclass(frozen=True)
class VaultAuth:
    uri: str
    auth: Auth


@dataclass(frozen=True)
class KeyVault:
    """Resolved Key Vault options: auth is already the effective default; vaults override it per vault URI."""

    auth: Auth
    vaults: tuple[VaultAuth, ...]
    refresh_interval: timedelta | None


@dataclass(frozen=True)
class FeatureFlags:
    selectors: tuple[Selector, ...]


@dataclass(frozen=True)
class AppConfigSyncSpec:
    store: Store
    selectors: tuple[Selector, ...]
    trim_key_prefixes: tuple[str, ...]
    refresh: Refresh
    target: Targets
    key_vault: KeyVault | None  # set exactly when target.secret is: Key Vault references need somewhere to go
    feature_flags: FeatureFlags | None
    rollout: RolloutPolicy


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration as Kubernetes users write it: 30s, 5m, 1h30m, 1.5h, 250ms."""
    if not isinstance(text, str) or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration: write a number and a unit (ns, us, ms, s, m, h), e.g. 30s or 1h30m")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def parse_spec(body: Mapping[str, Any]) -> AppConfigSyncSpec:
    """Parse a whole AppConfigSync object (apiVersion, metadata, spec), applying the CRD's defaults."""
    metadata = body.get("metadata") or {}
    name = metadata.get("name", "") if isinstance(metadata, Mapping) else ""
    namespace = metadata.get("namespace", "") if isinstance(metadata, Mapping) else ""
    obj = f"{KIND} {namespace}/{name}" if namespace else f"{KIND} {name}".rstrip()
    try:
        return _Parser().spec(body.get("spec"))
    except SpecError as exc:
        raise SpecError(exc.field, exc.message, obj) from None


class _Parser:
    """One method per CRD schema node; each takes the raw value and its field path."""

    def spec(self, raw: Any) -> AppConfigSyncSpec:
        path = "spec"
        m = _object(raw, path, required=True)
        _known(m, path, "store", "selectors", "trimKeyPrefixes", "refresh", "target", "keyVault", "featureFlags", "rollout")
        store = self.store(m.get("store"), f"{path}.store")
        target = self.targets(m.get("target"), f"{path}.target")
        if "featureFlags" in m and target.config_map.format not in (Format.JSON, Format.YAML):
            raise SpecError(
                f"{path}.featureFlags",
                "feature flags are written under feature_management in a json or yaml file: set "
                "spec.target.configMap.format to json or yaml (with a fileName), or remove spec.featureFlags",
            )
        if "keyVault" in m and target.secret is None:
            raise SpecError(
                f"{path}.keyVault",
                "Key Vault references are resolved into a Secret: set spec.target.secret.name, or remove spec.keyVault",
            )
        return AppConfigSyncSpec(
            store=store,
            selectors=self.selectors(m.get("selectors"), f"{path}.selectors"),
            trim_key_prefixes=self.trim_prefixes(m.get("trimKeyPrefixes"), f"{path}.trimKeyPrefixes"),
            refresh=self.refresh(m.get("refresh"), f"{path}.refresh"),
            target=target,
            key_vault=self.key_vault(m.get("keyVault"), f"{path}.keyVault", store) if target.secret else None,
            feature_flags=self.feature_flags(m.get("featureFlags"), f"{path}.featureFlags"),
            rollout=self.rollout(m.get("rollout"), f"{path}.rollout"),
        )

    def store(self, raw: Any, path: str) -> Store:
        m = _object(raw, path, required=True)
        _known(m, path, "connectionStringSecretRef", "endpoint", "auth", "replicaDiscovery", "loadBalancing")
        if ("connectionStringSecretRef" in m) == ("endpoint" in m):
            raise SpecError(
                path,
                "set exactly one of connectionStringSecretRef (a Secret holding the store's connection string) "
                "or endpoint (with Microsoft Entra ID auth)",
            )
        if "auth" in m and "endpoint" not in m:
            raise SpecError(f"{path}.auth", "auth is only used with endpoint: remove auth, or replace connectionStringSecretRef with endpoint")
        connection_string = None
        if "connectionStringSecretRef" in m:
            ref_path = f"{path}.connectionStringSecretRef"
            ref = _object(m["connectionStringSecretRef"], ref_path, required=True)
            _known(ref, ref_path, "name", "key")
            connection_string = SecretKeyRef(
                name=_resource_name(ref, "name", ref_path),
                key=_string(ref, "key", ref_path, default=DEFAULT_CONNECTION_STRING_KEY, pattern=DATA_KEY_PATTERN, max_length=253),
            )
        endpoint = _https_url(m, "endpoint", path) if "endpoint" in m else None
        return Store(
            connection_string=connection_string,
            endpoint=endpoint,
            auth=(self.auth(m.get("auth"), f"{path}.auth") or WorkloadIdentity()) if endpoint else None,
            replica_discovery=_bool(m, "replicaDiscovery", path, default=True),
            load_balancing=_bool(m, "loadBalancing", path, default=False),
        )

    def auth(self, raw: Any, path: str) -> Auth | None:
        """None when absent or empty: the caller picks the default."""
        m = _object(raw, path)
        if m is None:
            return None
        _known(m, path, "workloadIdentity", "managedIdentity", "servicePrincipalSecretRef")
        if len(m) > 1:
            raise SpecError(path, "set at most one of workloadIdentity, managedIdentity or servicePrincipalSecretRef")
        if "workloadIdentity" in m:
            sub = f"{path}.workloadIdentity"
            wi = _object(m["workloadIdentity"], sub) or {}
            _known(wi, sub, "clientId")
            return WorkloadIdentity(client_id=_client_id(wi, sub))
        if "managedIdentity" in m:
            sub = f"{path}.managedIdentity"
            mi = _object(m["managedIdentity"], sub) or {}
            _known(mi, sub, "clientId")
            return ManagedIdentity(client_id=_client_id(mi, sub))
        if "servicePrincipalSecretRef" in m:
            sub = f"{path}.servicePrincipalSecretRef"
            sp = _object(m["servicePrincipalSecretRef"], sub, required=True)
            _known(sp, sub, "name")
            return ServicePrincipal(secret_name=_resource_name(sp, "name", sub))
        return None

    def selectors(self, raw: Any, path: str) -> tuple[Selector, ...]:
        items = _list(raw, path, min_items=1, max_items=MAX_SELECTORS)
        if items is None:
            return (Selector(key_filter="*"),)
        return tuple(self.selector(item, f"{path}[{i}]") for i, item in enumerate(items))

    def selector(self, raw: Any, path: str) -> Selector:
        m = _object(raw, path, required=True)
        _known(m, path, "keyFilter", "labelFilter", "tagFilters", "snapshotName")
        if ("keyFilter" in m) == ("snapshotName" in m):
            raise SpecError(path, 'set exactly one of keyFilter (e.g. "app:*", or "*" for every key) or snapshotName')
        if "snapshotName" in m and ("labelFilter" in m or "tagFilters" in m):
            raise SpecError(
                path,
                "a selector with snapshotName takes no labelFilter or tagFilters (the snapshot fixed its filters); "
                "move them to a selector of their own",
            )
        tags = _list(m.get("tagFilters"), f"{path}.tagFilters", max_items=MAX_TAG_FILTERS) or []
        for i, tag in enumerate(tags):
            if not isinstance(tag, str) or not re.fullmatch(TAG_FILTER_PATTERN, tag, re.DOTALL) or len(tag) > 256:
                raise SpecError(f"{path}.tagFilters[{i}]", f"{tag!r} is not a tag filter: write name=value (name= for an empty value)")
        _unique(tags, f"{path}.tagFilters")
        return Selector(
            key_filter=_string(m, "keyFilter", path, min_length=1, max_length=1024),
            label_filter=_string(m, "labelFilter", path, max_length=1024) or None,
            tag_filters=tuple(tags),
            snapshot_name=_string(m, "snapshotName", path, min_length=1, max_length=256),
        )

    def trim_prefixes(self, raw: Any, path: str) -> tuple[str, ...]:
        items = _list(raw, path, max_items=MAX_TRIM_PREFIXES) or []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not 1 <= len(item) <= 1024:
                raise SpecError(f"{path}[{i}]", "must be a non-empty string, e.g. app:")
        _unique(items, path)
        return tuple(items)

    def refresh(self, raw: Any, path: str) -> Refresh:
        m = _object(raw, path) or {}
        _known(m, path, "interval", "sentinel")
        sentinel = None
        if "sentinel" in m:
            sub = f"{path}.sentinel"
            s = _object(m["sentinel"], sub, required=True)
            _known(s, sub, "key", "label")
            key = _string(s, "key", sub, required=True, min_length=1, max_length=1024)
            label = _string(s, "label", sub, max_length=1024)
            if "*" in key or "," in key:
                raise SpecError(f"{sub}.key", "must be one exact key: no * or ,")
            if label and ("*" in label or "," in label):
                raise SpecError(f"{sub}.label", "must be one exact label: no * or ,")
            sentinel = WatchedKey(key=key, label=label or None)
        interval = _duration(m, "interval", path, default=DEFAULT_REFRESH_INTERVAL, minimum=MIN_REFRESH_INTERVAL)
        assert interval is not None  # it has a default
        return Refresh(interval=interval, sentinel=sentinel)

    def targets(self, raw: Any, path: str) -> Targets:
        m = _object(raw, path, required=True)
        _known(m, path, "configMap", "secret")
        return Targets(
            config_map=self.target(m.get("configMap"), f"{path}.configMap"),
            secret=self.target(m.get("secret"), f"{path}.secret") if "secret" in m else None,
        )

    def target(self, raw: Any, path: str) -> Target:
        m = _object(raw, path, required=True)
        _known(m, path, "name", "format", "fileName", "separator", "keyReplacement")
        fmt = Format(_string(m, "format", path, default=Format.KEYS.value, enum=[f.value for f in Format]))
        file_name = _string(m, "fileName", path, pattern=DATA_KEY_PATTERN, max_length=253)
        if fmt is not Format.KEYS and file_name is None:
            raise SpecError(
                f"{path}.fileName",
                "fileName is required with format json, yaml or properties: it names the data key that holds the file, e.g. settings.json",
            )
        if fmt is Format.KEYS and file_name is not None:
            raise SpecError(f"{path}.fileName", "fileName is only used by the json, yaml and properties formats: remove it, or choose one of those formats")
        if file_name in (".", ".."):
            raise SpecError(f"{path}.fileName", "fileName must not be . or ..")
        separator = _string(m, "separator", path, enum=SEPARATORS)
        if separator is not None and fmt not in (Format.JSON, Format.YAML):
            raise SpecError(f"{path}.separator", "separator nests keys in json and yaml files only: remove it, or use format json or yaml")
        return Target(
            name=_resource_name(m, "name", path),
            format=fmt,
            file_name=file_name,
            separator=separator,
            key_replacement=_string(m, "keyReplacement", path, default=DEFAULT_KEY_REPLACEMENT, pattern=KEY_REPLACEMENT_PATTERN, max_length=8),
        )

    def key_vault(self, raw: Any, path: str, store: Store) -> KeyVault:
        m = _object(raw, path) or {}
        _known(m, path, "auth", "vaults", "refreshInterval")
        # Without keyVault.auth, Key Vault is reached as the store is (Entra ID), or as the operator pod is.
        default_auth = self.auth(m.get("auth"), f"{path}.auth") or store.auth or WorkloadIdentity()
        vaults = []
        items = _list(m.get("vaults"), f"{path}.vaults", max_items=MAX_VAULTS) or []
        for i, item in enumerate(items):
            sub = f"{path}.vaults[{i}]"
            v = _object(item, sub, required=True)
            _known(v, sub, "uri", "auth")
            vaults.append(VaultAuth(uri=_https_url(v, "uri", sub), auth=self.auth(v.get("auth"), f"{sub}.auth") or default_auth))
        _unique([v.uri.rstrip("/").lower() for v in vaults], f"{path}.vaults")
        return KeyVault(
            auth=default_auth,
            vaults=tuple(vaults),
            refresh_interval=_duration(m, "refreshInterval", path, minimum=MIN_SECRET_REFRESH_INTERVAL),
        )

    def feature_flags(self, raw: Any, path: str) -> FeatureFlags | None:
        if raw is None:
            return None
        m = _object(raw, path, required=True)
        _known(m, path, "selectors")
        return FeatureFlags(selectors=self.selectors(m.get("selectors"), f"{path}.selectors"))

    def rollout(self, raw: Any, path: str) -> RolloutPolicy:
        m = _object(raw, path) or {}
        _known(m, path, "policy")
        return RolloutPolicy(_string(m, "policy", path, default=RolloutPolicy.ON_CHANGE.value, enum=[p.value for p in RolloutPolicy]))


def _object(raw: Any, path: str, required: bool = False) -> Mapping[str, Any] | None:
    if raw is None:
        if required:
            raise SpecError(path, "is required")
        return None
    if not isinstance(raw, Mapping):
        raise SpecError(path, f"must be an object, not {type(raw).__name__}")
    return raw


def _known(m: Mapping[str, Any], path: str, *names: str) -> None:
    for key in m:
        if key not in names:
            raise SpecError(f"{path}.{key}", f"unknown field; {path} takes {', '.join(names)}")


def _list(raw: Any, path: str, min_items: int = 0, max_items: int | None = None) -> Sequence[Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise SpecError(path, f"must be a list, not {type(raw).__name__}")
    if len(raw) < min_items:
        raise SpecError(path, f"needs at least {min_items} item(s); remove the field to use the default")
    if max_items is not None and len(raw) > max_items:
        raise SpecError(path, f"has {len(raw)} items; at most {max_items} are allowed")
    return raw


def _unique(items: Sequence[Any], path: str) -> None:
    seen = set()
    for item in items:
        if item in seen:
            raise SpecError(path, f"{item!r} appears twice; list it once")
        seen.add(item)


def _string(
    m: Mapping[str, Any],
    key: str,
    path: str,
    *,
    default: str | None = None,
    required: bool = False,
    pattern: str | None = None,
    enum: Sequence[str] | None = None,
    min_length: int = 0,
    max_length: int | None = None,
) -> str | None:
    field = f"{path}.{key}"
    if key not in m or m[key] is None:
        if required:
            raise SpecError(field, "is required")
        return default
    value = m[key]
    if not isinstance(value, str):
        raise SpecError(field, f"must be a string, not {type(value).__name__}")
    if enum is not None and value not in enum:
        raise SpecError(field, f"{value!r} is not one of {', '.join(enum)}")
    if len(value) < min_length:
        raise SpecError(field, "must not be empty")
    if max_length is not None and len(value) > max_length:
        raise SpecError(field, f"is {len(value)} characters long; at most {max_length} are allowed")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise SpecError(field, f"{value!r} does not match {pattern}")
    return value


def _resource_name(m: Mapping[str, Any], key: str, path: str) -> str:
    value = _string(m, key, path, required=True, max_length=253)
    assert value is not None
    if not re.fullmatch(RESOURCE_NAME_PATTERN, value):
        raise SpecError(f"{path}.{key}", f"{value!r} is not a valid object name: use lower-case letters, digits, - and .")
    return value


def _client_id(m: Mapping[str, Any], path: str) -> str | None:
    value = _string(m, "clientId", path)
    if value is not None and not re.fullmatch(CLIENT_ID_PATTERN, value):
        raise SpecError(f"{path}.clientId", f"{value!r} is not a client ID: write the GUID shown for the identity in Azure")
    return value


def _https_url(m: Mapping[str, Any], key: str, path: str) -> str:
    value = _string(m, key, path, required=True, max_length=2048)
    assert value is not None
    if not re.fullmatch(HTTPS_URL_PATTERN, value):
        raise SpecError(f"{path}.{key}", f"{value!r} is not an https URL of a host, e.g. https://example.azconfig.io")
    return value


def _bool(m: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = m.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SpecError(f"{path}.{key}", f"must be true or false, not {value!r}")
    return value


def _duration(m: Mapping[str, Any], key: str, path: str, minimum: timedelta, default: str | None = None) -> timedelta | None:
    text = _string(m, key, path, default=default, max_length=20)
    if text is None:
        return None
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise SpecError(f"{path}.{key}", str(exc)) from None
    if value < minimum:
        raise SpecError(f"{path}.{key}", f"{text} is too short: it must be at least {_format(minimum)}")
    return value


def _format(d: timedelta) -> str:
    seconds = int(d.total_seconds())
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"
