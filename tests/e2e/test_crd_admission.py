"""The CRD on the real API server: good objects are defaulted, bad ones are refused naming the field and the fix."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from appconfig_sync.spec import parse_spec

pytestmark = pytest.mark.cluster

_DELETE = object()


def minimal(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "appconfigsync.dev/v1alpha1",
        "kind": "AppConfigSync",
        "metadata": {"name": name},
        "spec": {
            "store": {"connectionStringSecretRef": {"name": "appconfig"}},
            "target": {"configMap": {"name": "web-config"}},
        },
    }


def full() -> dict[str, Any]:
    """Every field at once: examples/appconfigsync-every-field.yaml (named "full")."""
    return yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "appconfigsync-every-field.yaml").read_text())


def apply(cluster: Any, namespace: str, body: dict[str, Any]) -> Any:
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body), check=False)


def get(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "acs", name, "-n", namespace, "-o", "json").stdout)


def changed(path: str, value: Any) -> dict[str, Any]:
    body = minimal("bad")
    node = body
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return body


def test_minimal_object_is_accepted_and_defaulted(cluster: Any, crds: None, namespace: str) -> None:
    result = apply(cluster, namespace, minimal())
    assert result.returncode == 0, result.stderr
    spec = get(cluster, namespace, "web")["spec"]
    assert spec["store"] == {
        "connectionStringSecretRef": {"name": "appconfig", "key": "connectionString"},
        "replicaDiscovery": True,
        "loadBalancing": False,
    }
    assert spec["selectors"] == [{"keyFilter": "*"}]
    assert spec["refresh"] == {"interval": "30s"}
    assert spec["target"] == {"configMap": {"name": "web-config", "format": "keys", "keyReplacement": "_"}}
    assert spec["rollout"] == {"policy": "OnChange"}
    assert parse_spec(get(cluster, namespace, "web")) == parse_spec(minimal() | {"metadata": {"name": "web", "namespace": namespace}})


def test_every_field_is_accepted_and_kept(cluster: Any, crds: None, namespace: str) -> None:
    body = full()
    result = apply(cluster, namespace, body)
    assert result.returncode == 0, result.stderr
    spec = get(cluster, namespace, "full")["spec"]
    expected = copy.deepcopy(body["spec"])
    expected["target"]["configMap"]["keyReplacement"] = "_"
    expected["target"]["secret"].update(format="keys", keyReplacement="_")
    assert spec == expected  # nothing pruned: every field exists in the schema
    assert parse_spec({"spec": spec}) == parse_spec(body)


# (path set in a minimal object, value, the field the server must name, words of the message)
BAD = [
    ("spec.store.endpoint", "https://x.azconfig.io", "spec.store", "exactly one of connectionStringSecretRef"),
    ("spec.store.connectionStringSecretRef", _DELETE, "spec.store", "exactly one of connectionStringSecretRef"),
    ("spec.store.auth", {"managedIdentity": {}}, "spec.store", "auth is only used with endpoint"),
    ("spec.store", {"endpoint": "https://x.azconfig.io", "auth": {"workloadIdentity": {}, "managedIdentity": {}}},
     "spec.store.auth", "at most one of workloadIdentity"),
    ("spec.store", {"endpoint": "http://x.azconfig.io"}, "spec.store.endpoint", "should match"),
    ("spec.store", {"endpoint": "https://x.azconfig.io", "auth": {"managedIdentity": {"clientId": "me"}}},
     "spec.store.auth.managedIdentity.clientId", "should match"),
    ("spec.store.connectionStringSecretRef.name", "Bad_Name", "spec.store.connectionStringSecretRef.name", "should match"),
    ("spec.selectors", [], "spec.selectors", "at least 1"),
    ("spec.selectors", [{"labelFilter": "prod"}], "spec.selectors[0]", "exactly one of keyFilter"),
    ("spec.selectors", [{"snapshotName": "s", "labelFilter": "p"}], "spec.selectors[0]", "takes no labelFilter"),
    ("spec.selectors", [{"keyFilter": "*", "tagFilters": [f"t{i}=v" for i in range(6)]}],
     "spec.selectors[0].tagFilters", "at most 5"),
    ("spec.selectors", [{"keyFilter": "*", "tagFilters": ["novalue"]}], "spec.selectors[0].tagFilters[0]", "should match"),
    ("spec.refresh", {"interval": "500ms"}, "spec.refresh.interval", "at least 1s"),
    ("spec.refresh", {"interval": "30"}, "spec.refresh.interval", "should match"),
    ("spec.refresh", {"sentinel": {"key": "Sentinel*"}}, "spec.refresh.sentinel", "one exact key"),
    ("spec.target.configMap.format", "xml", "spec.target.configMap.format", "Unsupported value"),
    ("spec.target.configMap.format", "json", "spec.target.configMap", "fileName is required with format json"),
    ("spec.target.configMap.fileName", "settings.json", "spec.target.configMap", "fileName is only used by the json"),
    ("spec.target.configMap", {"name": "c", "format": "properties", "fileName": "f", "separator": ":"},
     "spec.target.configMap", "separator nests keys in json and yaml files only"),
    ("spec.target.configMap", {"name": "c", "format": "json", "fileName": "f", "separator": "|"},
     "spec.target.configMap.separator", "Unsupported value"),
    ("spec.target.configMap.keyReplacement", ":", "spec.target.configMap.keyReplacement", "should match"),
    ("spec.target.secret", {"name": "s", "format": "yaml"}, "spec.target.secret", "fileName is required"),
    ("spec.featureFlags", {}, "spec", "featureFlags are written under feature_management"),
    ("spec.keyVault", {}, "spec", "set spec.target.secret.name"),
    ("spec.rollout", {"policy": "Always"}, "spec.rollout.policy", "Unsupported value"),
    ("spec.refreshh", {}, "spec.refreshh", "unknown field"),
    ("spec.target", {}, "spec.target.configMap", "Required value"),
]


@pytest.mark.parametrize(("path", "value", "field", "words"), BAD, ids=[f"{b[0]}={b[1]!r}"[:60] for b in BAD])
def test_bad_objects_are_refused_naming_the_field(
    cluster: Any, crds: None, namespace: str, path: str, value: Any, field: str, words: str
) -> None:
    result = apply(cluster, namespace, changed(path, value))
    assert result.returncode != 0, f"accepted: {path}={value!r}"
    assert f"{field}:" in result.stderr or f'"{field}"' in result.stderr, result.stderr
    assert words in result.stderr, result.stderr


def test_key_vault_secret_refresh_needs_a_minute(cluster: Any, crds: None, namespace: str) -> None:
    body = minimal("kv")
    body["spec"]["target"]["secret"] = {"name": "s"}
    body["spec"]["keyVault"] = {"refreshInterval": "30s"}
    result = apply(cluster, namespace, body)
    assert result.returncode != 0
    assert "spec.keyVault.refreshInterval" in result.stderr and "at least 1m" in result.stderr, result.stderr
    body["spec"]["keyVault"] = {"refreshInterval": "1m"}
    assert apply(cluster, namespace, body).returncode == 0


def test_status_subresource_and_printer_columns(cluster: Any, crds: None, namespace: str) -> None:
    assert apply(cluster, namespace, minimal()).returncode == 0
    status = {
        "status": {
            "observedGeneration": 1,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "Synced", "message": "3 keys",
                "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1,
            }],
            "lastSyncTime": "2026-01-01T00:00:00Z",
            "keyCount": 3,
            "dataHash": "0123456789abcdef0123",
            "sentinelETag": "etag-1",
        }
    }
    cluster.kubectl("patch", "acs", "web", "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status))
    table = cluster.kubectl("get", "acs", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "REASON", "KEYS", "LAST", "SYNC", "AGE"]
    assert table[1].split()[:4] == ["web", "True", "Synced", "3"]
    assert "CONFIGMAP" in cluster.kubectl("get", "acs", "-n", namespace, "-o", "wide").stdout
    assert "web" in cluster.kubectl("get", "appconfig", "-n", namespace).stdout  # the category

    bad = {"status": {"conditions": [{"type": "Ready", "status": "Maybe", "reason": "Synced", "message": "",
                                      "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    result = cluster.kubectl("patch", "acs", "web", "-n", namespace, "--subresource=status", "--type=merge",
                             "-p", json.dumps(bad), check=False)
    assert result.returncode != 0 and "status.conditions[0].status" in result.stderr, result.stderr


def test_kubectl_explain_shows_the_descriptions(cluster: Any, crds: None) -> None:
    out = " ".join(cluster.kubectl("explain", "appconfigsync.spec.store").stdout.split())  # explain wraps lines
    assert "exactly one of connectionStringSecretRef or endpoint" in out
    assert "connectionStringSecretRef" in out and "replicaDiscovery" in out
