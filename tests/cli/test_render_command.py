"""`appconfig-sync render -f`: the dry run a user runs before applying an AppConfigSync."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from azure.appconfiguration import AzureAppConfigurationClient, ConfigurationSetting

from appconfig_sync.emulator.server import EmulatorServer

pytestmark = pytest.mark.emulator

MANIFEST = """
apiVersion: appconfigsync.dev/v1alpha1
kind: AppConfigSync
metadata: {name: web, namespace: demo}
spec:
  store: {connectionStringSecretRef: {name: appconfig}}
  selectors: [{keyFilter: "app:*"}]
  trimKeyPrefixes: ["app:"]
  target: {configMap: {name: web-config, format: json, fileName: settings.json, separator: ":"}}
"""


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        with AzureAppConfigurationClient.from_connection_string(server.connection_string) as store:
            store.set_configuration_setting(ConfigurationSetting(key="app:db:host", value="db.local"))
            store.set_configuration_setting(ConfigurationSetting(key="app:db:port", value="5432"))
            store.set_configuration_setting(ConfigurationSetting(key="other", value="x"))
        yield server


def render(manifest: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "acs.yaml"
    path.write_text(manifest)
    return subprocess.run(
        [sys.executable, "-m", "appconfig_sync", "render", "-f", str(path)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )


def test_render_prints_the_configmap(emulator: EmulatorServer, tmp_path: Path) -> None:
    result = render(MANIFEST, tmp_path, {"APPCONFIG_CONNECTION_STRING": emulator.connection_string})
    assert result.returncode == 0, result.stderr
    configmap = yaml.safe_load(result.stdout)
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["name"] == "web-config"
    assert yaml.safe_load(configmap["data"]["settings.json"]) == {"db": {"host": "db.local", "port": "5432"}}
    assert configmap["metadata"]["annotations"]["appconfigsync.dev/data-hash"]


def test_render_names_the_field_of_a_bad_spec(tmp_path: Path) -> None:
    bad = MANIFEST.replace("format: json, fileName: settings.json, ", "format: json, ")
    result = render(bad, tmp_path, {})
    assert result.returncode == 2
    assert "spec.target.configMap" in result.stderr and "fileName" in result.stderr


def test_render_reports_a_wrong_secret_without_printing_it(emulator: EmulatorServer, tmp_path: Path) -> None:
    wrong = emulator.connection_string.rsplit("Secret=", 1)[0] + "Secret=d3Jvbmctc2VjcmV0LXZhbHVlLTEyMzQ1Njc4OTA="
    result = render(MANIFEST, tmp_path, {"APPCONFIG_CONNECTION_STRING": wrong})
    assert result.returncode == 1
    assert "AuthenticationFailed" in result.stderr
    assert "d3Jvbmctc2VjcmV0" not in result.stderr + result.stdout
