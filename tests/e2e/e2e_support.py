"""Helpers for the end-to-end tests: the operator process, Kubernetes shortcuts, the audit log."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from azure.appconfiguration import AzureAppConfigurationClient, ConfigurationSetting
from kubernetes import client

from controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "appconfig-sync-system"
OPERATOR_SA = "operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.25, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s: {what or predicate} (last: {last!r})")


def operator_rbac() -> str:
    """The ClusterRole from deploy/ when it exists, bound to the operator's ServiceAccount."""
    role_file = REPO / "deploy" / "base" / "clusterrole.yaml"
    role_name = "appconfig-sync"
    docs: list[dict[str, Any]] = []
    if role_file.exists():
        docs.extend(d for d in yaml.safe_load_all(role_file.read_text()) if d)
        role_name = docs[0]["metadata"]["name"]
    else:
        role_name = "cluster-admin"
    docs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "appconfig-sync-e2e"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": OPERATOR_NAMESPACE}],
        }
    )
    return yaml.safe_dump_all(docs)



@dataclass
class OperatorProcess:
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    restarts: list[float] = field(default_factory=list)

    def start(self) -> OperatorProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def put(store: AzureAppConfigurationClient, key: str, value: str, label: str | None = None, **kw: Any) -> None:
    store.set_configuration_setting(ConfigurationSetting(key=key, value=value, label=label, **kw))


@dataclass
class Kube:
    cluster: ControlPlane
    namespace: str
    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi

    def apply(self, obj: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.namespace, "apply", "-f", "-", input=json.dumps(obj), check=check)

    def configmap(self, name: str) -> client.V1ConfigMap | None:
        try:
            return self.core.read_namespaced_config_map(name, self.namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def data(self, name: str) -> dict[str, str] | None:
        cm = self.configmap(name)
        return None if cm is None else dict(cm.data or {})

    def sync(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object("appconfigsync.dev", "v1alpha1", self.namespace, "appconfigsyncs", name)

    def ready(self, name: str) -> dict[str, Any] | None:
        status = self.sync(name).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)

    def events(self, name: str | None = None) -> list[client.CoreV1Event]:
        items = self.core.list_namespaced_event(self.namespace).items
        return [e for e in items if name is None or e.involved_object.name == name]

    def connection_secret(self, connection_string: str, name: str = "appconfig") -> None:
        self.core.create_namespaced_secret(
            self.namespace, {"metadata": {"name": name}, "stringData": {"connectionString": connection_string}}
        )

    def app_sync(self, name: str = "web", **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": "appconfigsync.dev/v1alpha1",
            "kind": "AppConfigSync",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "store": {"connectionStringSecretRef": {"name": "appconfig"}},
                "refresh": {"interval": "1s", "sentinel": {"key": "Sentinel"}},
                "target": {"configMap": {"name": f"{name}-config"}},
                **spec,
            },
        }
        self.apply(body)
        return body

    def deployment(self, name: str, configmap: str, how: str = "volume", annotations: dict[str, str] | None = None) -> None:
        container: dict[str, Any] = {"name": "app", "image": "example.invalid/app:1"}
        pod: dict[str, Any] = {"containers": [container]}
        if how == "volume":
            pod["volumes"] = [{"name": "cfg", "configMap": {"name": configmap}}]
            container["volumeMounts"] = [{"name": "cfg", "mountPath": "/etc/app"}]
        elif how == "envFrom":
            container["envFrom"] = [{"configMapRef": {"name": configmap}}]
        self.apps.create_namespaced_deployment(
            self.namespace,
            {
                "metadata": {"name": name, "annotations": annotations or {}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
                },
            },
        )

    def replica_sets(self, deployment: str) -> list[str]:
        return sorted(
            rs.metadata.name
            for rs in self.apps.list_namespaced_replica_set(self.namespace).items
            if any(o.name == deployment for o in rs.metadata.owner_references or [])
        )


@dataclass
class Audit:
    """Counts the operator's writes from the API server's audit log (it records every write, nothing else)."""

    path: Path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def operator_writes(self, since: int, namespace: str | None = None) -> list[str]:
        with open(self.path, "rb") as log:
            log.seek(since)
            entries = [json.loads(line) for line in log if line.strip()]
        return [
            f"{e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('subresource') or ''}"
            f"{e['objectRef'].get('name')}"
            for e in entries
            if e["user"]["username"] == OPERATOR_USER
            and (namespace is None or e["objectRef"].get("namespace") == namespace)
        ]
