"""parse_spec/parse_duration, and that the CRD and parse_spec agree on defaults and patterns."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from appconfig_sync import spec as specmod
from appconfig_sync.spec import (
    AppConfigSyncSpec,
    Format,
    KeyVault,
    ManagedIdentity,
    RolloutPolicy,
    Selector,
    ServicePrincipal,
    SpecError,
    Target,
    VaultAuth,
    WatchedKey,
    WorkloadIdentity,
    parse_duration,
    parse_spec,
)

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "appconfigsync.yaml"
EVERY_FIELD = Path(__file__).resolve().parents[2] / "examples" / "appconfigsync-every-field.yaml"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


def minimal() -> dict[str, Any]:
    return {
        "apiVersion": "appconfigsync.dev/v1alpha1",
        "kind": "AppConfigSync",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "store": {"connectionStringSecretRef": {"name": "appconfig"}},
            "target": {"configMap": {"name": "web-config"}},
        },
    }


def full() -> dict[str, Any]:
    """Every field at once (examples/appconfigsync-every-field.yaml), under minimal()'s name and namespace."""
    body = yaml.safe_load(EVERY_FIELD.read_text())
    body["metadata"] = minimal()["metadata"]
    return body


def with_spec(**changes: Any) -> dict[str, Any]:
    body = minimal()
    body["spec"].update(changes)
    return body


# --- parse_duration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("1m30s", timedelta(seconds=90)),
        ("1h", timedelta(hours=1)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        ("2h45m10s", timedelta(hours=2, minutes=45, seconds=10)),
        ("1500us", timedelta(microseconds=1500)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "1d", "-1s", " 1s", "1s ", ".5s", "1 h", "h", "1hour"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


# --- parse_spec -----------------------------------------------------------------------------------------------


def test_minimal_gets_the_crd_defaults() -> None:
    spec = parse_spec(minimal())
    assert spec.store.connection_string == specmod.SecretKeyRef("appconfig", "connectionString")
    assert spec.store.endpoint is None and spec.store.auth is None
    assert spec.store.replica_discovery is True and spec.store.load_balancing is False
    assert spec.selectors == (Selector(key_filter="*"),)
    assert spec.trim_key_prefixes == ()
    assert spec.refresh == specmod.Refresh(interval=timedelta(seconds=30), sentinel=None)
    assert spec.target.config_map == Target(name="web-config", format=Format.KEYS, key_replacement="_")
    assert spec.target.secret is None and spec.key_vault is None and spec.feature_flags is None
    assert spec.rollout is RolloutPolicy.ON_CHANGE


def test_full_spec() -> None:
    spec = parse_spec(full())
    assert spec.store.auth == WorkloadIdentity(client_id=CLIENT_ID)
    assert (spec.store.replica_discovery, spec.store.load_balancing) == (False, True)
    assert spec.selectors == (
        Selector(key_filter="app:*", label_filter="prod", tag_filters=("env=prod", "team=")),
        Selector(snapshot_name="release-1"),
    )
    assert spec.trim_key_prefixes == ("app:",)
    assert spec.refresh.interval == timedelta(seconds=90)
    assert spec.refresh.sentinel == WatchedKey("Sentinel", "prod")
    assert spec.target.config_map == Target("web-config", Format.JSON, "settings.json", ":", "_")
    assert spec.target.secret == Target("web-secrets")
    assert spec.key_vault == KeyVault(
        auth=ManagedIdentity(),
        vaults=(VaultAuth("https://kv1.vault.azure.net", ServicePrincipal("sp")),),
        refresh_interval=timedelta(hours=1),
    )
    assert spec.feature_flags == specmod.FeatureFlags((Selector(key_filter="Beta*", label_filter="prod"),))
    assert spec.rollout is RolloutPolicy.NEVER


def test_empty_labels_mean_no_label() -> None:
    body = with_spec(selectors=[{"keyFilter": "*", "labelFilter": ""}], refresh={"sentinel": {"key": "S", "label": ""}})
    spec = parse_spec(body)
    assert spec.selectors[0].label_filter is None
    assert spec.refresh.sentinel == WatchedKey("S", None)


def test_endpoint_without_auth_uses_the_operators_workload_identity() -> None:
    spec = parse_spec(with_spec(store={"endpoint": "https://x.azconfig.io"}))
    assert spec.store.auth == WorkloadIdentity()
    spec = parse_spec(with_spec(store={"endpoint": "https://x.azconfig.io", "auth": {}}))
    assert spec.store.auth == WorkloadIdentity()


@pytest.mark.parametrize(
    ("store", "key_vault", "expected"),
    [
        ({"connectionStringSecretRef": {"name": "c"}}, None, WorkloadIdentity()),
        ({"endpoint": "https://x.azconfig.io", "auth": {"managedIdentity": {"clientId": CLIENT_ID}}}, {}, ManagedIdentity(CLIENT_ID)),
        ({"endpoint": "https://x.azconfig.io"}, {"auth": {"servicePrincipalSecretRef": {"name": "sp"}}}, ServicePrincipal("sp")),
    ],
)
def test_key_vault_auth_defaults(store: dict[str, Any], key_vault: dict[str, Any] | None, expected: Any) -> None:
    body = with_spec(store=store, target={"configMap": {"name": "c"}, "secret": {"name": "s"}})
    if key_vault is not None:
        body["spec"]["keyVault"] = key_vault
    spec = parse_spec(body)
    assert spec.key_vault is not None and spec.key_vault.auth == expected
    assert spec.key_vault.refresh_interval is None


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = body
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return body


_DELETE = object()

# (path to set in the minimal object, value, field the error must name, words the fix must contain)
BAD = [
    ("spec.store.endpoint", "https://x.azconfig.io", "spec.store", "exactly one of connectionStringSecretRef"),
    ("spec.store.connectionStringSecretRef", _DELETE, "spec.store", "exactly one of connectionStringSecretRef"),
    ("spec.store.auth", {"managedIdentity": {}}, "spec.store.auth", "only used with endpoint"),
    ("spec.store.connectionStringSecretRef.name", "Bad_Name", "spec.store.connectionStringSecretRef.name", "valid object name"),
    ("spec.store.connectionStringSecretRef.key", "a/b", "spec.store.connectionStringSecretRef.key", "does not match"),
    ("spec.store.replicaDiscovery", "yes", "spec.store.replicaDiscovery", "true or false"),
    ("spec.selectors", [], "spec.selectors", "at least 1"),
    ("spec.selectors", [{"labelFilter": "prod"}], "spec.selectors[0]", "exactly one of keyFilter"),
    ("spec.selectors", [{"keyFilter": "*", "snapshotName": "s"}], "spec.selectors[0]", "exactly one of keyFilter"),
    ("spec.selectors", [{"snapshotName": "s", "labelFilter": "p"}], "spec.selectors[0]", "takes no labelFilter"),
    ("spec.selectors", [{"snapshotName": "s", "tagFilters": ["a=b"]}], "spec.selectors[0]", "takes no labelFilter"),
    ("spec.selectors", [{"keyFilter": "*", "tagFilters": [f"t{i}=v" for i in range(6)]}], "spec.selectors[0].tagFilters", "at most 5"),
    ("spec.selectors", [{"keyFilter": "*", "tagFilters": ["novalue"]}], "spec.selectors[0].tagFilters[0]", "name=value"),
    ("spec.selectors", [{"keyFilter": "*", "tagFilters": ["=v"]}], "spec.selectors[0].tagFilters[0]", "name=value"),
    ("spec.selectors", [{"keyFilter": ""}], "spec.selectors[0].keyFilter", "must not be empty"),
    ("spec.trimKeyPrefixes", [""], "spec.trimKeyPrefixes[0]", "non-empty"),
    ("spec.trimKeyPrefixes", ["a", "a"], "spec.trimKeyPrefixes", "appears twice"),
    ("spec.refresh", {"interval": "500ms"}, "spec.refresh.interval", "at least 1s"),
    ("spec.refresh", {"interval": "30"}, "spec.refresh.interval", "not a duration"),
    ("spec.refresh", {"sentinel": {"key": "S*"}}, "spec.refresh.sentinel.key", "one exact key"),
    ("spec.refresh", {"sentinel": {"key": "S", "label": "a,b"}}, "spec.refresh.sentinel.label", "one exact label"),
    ("spec.refresh", {"sentinel": {"label": "x"}}, "spec.refresh.sentinel.key", "required"),
    ("spec.target.configMap.format", "xml", "spec.target.configMap.format", "not one of keys, json, yaml, properties"),
    ("spec.target.configMap.format", "json", "spec.target.configMap.fileName", "required with format json"),
    ("spec.target.configMap.fileName", "settings.json", "spec.target.configMap.fileName", "only used by the json"),
    ("spec.target.configMap", {"name": "c", "format": "yaml", "fileName": "a/b"}, "spec.target.configMap.fileName", "does not match"),
    ("spec.target.configMap", {"name": "c", "format": "yaml", "fileName": ".."}, "spec.target.configMap.fileName", "must not be"),
    ("spec.target.configMap", {"name": "c", "format": "json", "fileName": "f", "separator": "|"}, "spec.target.configMap.separator", "not one of"),
    ("spec.target.configMap", {"name": "c", "format": "properties", "fileName": "f", "separator": ":"}, "spec.target.configMap.separator", "json and yaml files only"),
    ("spec.target.configMap.keyReplacement", ":", "spec.target.configMap.keyReplacement", "does not match"),
    ("spec.target.configMap", _DELETE, "spec.target.configMap", "required"),
    ("spec.target.secret", {"name": "s", "format": "json"}, "spec.target.secret.fileName", "required with format json"),
    ("spec.featureFlags", {}, "spec.featureFlags", "json or yaml file"),
    ("spec.keyVault", {}, "spec.keyVault", "set spec.target.secret.name"),
    ("spec.rollout", {"policy": "Always"}, "spec.rollout.policy", "not one of OnChange, Never"),
    ("spec.refreshh", {}, "spec.refreshh", "unknown field"),
    ("spec.store.connectionStringSecretRef.namespace", "x", "spec.store.connectionStringSecretRef.namespace", "unknown field"),
    ("spec", _DELETE, "spec", "required"),
]


@pytest.mark.parametrize(("path", "value", "field", "fix"), BAD, ids=[f"{b[0]}={b[1]!r}"[:60] for b in BAD])
def test_bad_specs_name_the_field_and_the_fix(path: str, value: Any, field: str, fix: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(_set(minimal(), path, value))
    assert caught.value.field == field
    assert fix in caught.value.message
    assert str(caught.value).startswith(f"AppConfigSync shop/web: {field}: ")


ENDPOINT_BAD = [
    ({"endpoint": "http://x.azconfig.io"}, "spec.store.endpoint", "https URL"),
    ({"endpoint": "https://x.azconfig.io/path"}, "spec.store.endpoint", "https URL"),
    ({"endpoint": "https://x", "auth": {"workloadIdentity": {}, "managedIdentity": {}}}, "spec.store.auth", "at most one"),
    ({"endpoint": "https://x", "auth": {"workloadIdentity": {"clientId": "me"}}}, "spec.store.auth.workloadIdentity.clientId", "GUID"),
    ({"endpoint": "https://x", "auth": {"servicePrincipalSecretRef": {}}}, "spec.store.auth.servicePrincipalSecretRef.name", "required"),
    ({"endpoint": "https://x", "auth": {"certificate": {}}}, "spec.store.auth.certificate", "unknown field"),
]


@pytest.mark.parametrize(("store", "field", "fix"), ENDPOINT_BAD)
def test_bad_endpoint_stores(store: dict[str, Any], field: str, fix: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(with_spec(store=store))
    assert (caught.value.field, fix in caught.value.message) == (field, True)


@pytest.mark.parametrize(
    ("key_vault", "field", "fix"),
    [
        ({"refreshInterval": "30s"}, "spec.keyVault.refreshInterval", "at least 1m"),
        ({"vaults": [{"uri": "https://a.vault.azure.net"}, {"uri": "https://A.vault.azure.net/"}]}, "spec.keyVault.vaults", "twice"),
        ({"vaults": [{"auth": {}}]}, "spec.keyVault.vaults[0].uri", "required"),
    ],
)
def test_bad_key_vault(key_vault: dict[str, Any], field: str, fix: str) -> None:
    body = with_spec(target={"configMap": {"name": "c"}, "secret": {"name": "s"}}, keyVault=key_vault)
    with pytest.raises(SpecError) as caught:
        parse_spec(body)
    assert (caught.value.field, fix in caught.value.message) == (field, True)


def test_feature_flags_with_yaml_target() -> None:
    body = with_spec(target={"configMap": {"name": "c", "format": "yaml", "fileName": "a.yaml"}}, featureFlags={})
    assert parse_spec(body).feature_flags == specmod.FeatureFlags((Selector(key_filter="*"),))


def test_spec_is_frozen() -> None:
    spec = parse_spec(minimal())
    with pytest.raises(AttributeError):
        spec.rollout = RolloutPolicy.NEVER  # type: ignore[misc]


# --- the CRD and parse_spec agree -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def apply_crd_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it, including inside defaulted values."""
    if schema.get("type") == "object" and isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_crd_defaults(sub, value[name])
    elif schema.get("type") == "array" and isinstance(value, list):
        return [apply_crd_defaults(schema["items"], item) for item in value]
    return value


def _walk(schema: dict[str, Any], path: str = "") -> Any:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")


@pytest.mark.parametrize("make", [minimal, full])
def test_crd_defaults_equal_parse_spec_defaults(schema: dict[str, Any], make: Any) -> None:
    body = make()
    defaulted = apply_crd_defaults(schema, copy.deepcopy(body))
    assert defaulted != body or make is full
    assert parse_spec(defaulted) == parse_spec(body)


def test_crd_defaults_on_a_minimal_object(schema: dict[str, Any]) -> None:
    spec = apply_crd_defaults(schema, minimal())["spec"]
    assert spec["store"]["connectionStringSecretRef"]["key"] == "connectionString"
    assert spec["selectors"] == [{"keyFilter": "*"}]
    assert spec["refresh"] == {"interval": "30s"}
    assert spec["target"]["configMap"] == {"name": "web-config", "format": "keys", "keyReplacement": "_"}
    assert spec["rollout"] == {"policy": "OnChange"}


def test_crd_schema_is_structural_and_described(schema: dict[str, Any]) -> None:
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type"
        assert not node.get("x-kubernetes-preserve-unknown-fields"), f"{path} preserves unknown fields"
        if path not in ("", ".metadata"):
            assert node.get("description") or path.endswith("[]"), f"{path} has no description"
        for rule in node.get("x-kubernetes-validations", []):
            assert rule.get("message"), f"{path}: rule {rule['rule']} has no message"
        if node.get("type") == "string" and ("x-kubernetes-validations" in node or "pattern" in node):
            assert "maxLength" in node or "enum" in node or "format" in node, f"{path}: unbounded string in a rule"


def test_crd_patterns_match_spec_py(schema: dict[str, Any]) -> None:
    patterns = {node.get("pattern") for _, node in _walk(schema)} - {None}
    for constant in ("DURATION_PATTERN", "RESOURCE_NAME_PATTERN", "DATA_KEY_PATTERN", "KEY_REPLACEMENT_PATTERN",
                     "CLIENT_ID_PATTERN", "HTTPS_URL_PATTERN", "TAG_FILTER_PATTERN"):
        assert getattr(specmod, constant) in patterns, constant
    separators = {tuple(node["enum"]) for path, node in _walk(schema) if path.endswith(".separator")}
    assert separators == {specmod.SEPARATORS}


def test_crd_names_status_and_printer_columns(crd: dict[str, Any], schema: dict[str, Any]) -> None:
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["acs"]
    assert "appconfig" in crd["spec"]["names"]["categories"]
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"] if c.get("priority", 0) == 0}
    assert list(columns) == ["Ready", "Reason", "Keys", "Last Sync", "Age"]
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Keys"]["jsonPath"] == ".status.keyCount"
    status = schema["properties"]["status"]["properties"]
    condition = status["conditions"]["items"]
    assert set(condition["required"]) == {"type", "status", "reason", "message", "lastTransitionTime"}
    assert {"observedGeneration", "lastSyncTime", "keyCount", "dataHash", "sentinelETag", "secretDataHash",
            "lastSecretRefreshTime"} <= set(status)


def test_spec_dataclass_fields_cover_the_crd(schema: dict[str, Any]) -> None:
    """Every spec field of the CRD is read by parse_spec: no field is accepted and then ignored."""
    source = Path(specmod.__file__).read_text()
    for path, _ in _walk(schema["properties"]["spec"]):
        name = path.rsplit(".", 1)[-1].rstrip("[]")
        if name:
            assert f'"{name}"' in source, f"spec{path} is not read by parse_spec"
    assert AppConfigSyncSpec.__dataclass_params__.frozen  # type: ignore[attr-defined]
