"""`appconfig-sync emulator` as a user runs it: a subprocess, its first stdout line, SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from azure.appconfiguration import AzureAppConfigurationClient, ConfigurationSetting

SECRET = "c2VjcmV0LXNlY3JldA=="


@contextmanager
def cli(*args: str) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "APPCONFIG_EMULATOR_ID": "cli-test", "APPCONFIG_EMULATOR_SECRET": SECRET}
    process = subprocess.Popen([sys.executable, "-m", "appconfig_sync", "emulator", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=15)


def test_cli_prints_a_connection_string_and_persists_on_sigint(tmp_path: Path) -> None:
    data = tmp_path / "cli.yaml"
    data.write_text(yaml.safe_dump({"items": [{"key": "seeded", "value": "yes"}]}))
    with cli("--data", str(data)) as process:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("Endpoint=http://127.0.0.1:") and line.endswith(";Id=cli-test;Secret=" + SECRET)
        client = AzureAppConfigurationClient.from_connection_string(line, retry_total=0)
        assert client.get_configuration_setting("seeded").value == "yes"
        client.set_configuration_setting(ConfigurationSetting(key="added", value="by the sdk"))
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert SECRET not in stderr
    persisted = {i["key"]: i["value"] for i in yaml.safe_load(data.read_text())["items"]}
    assert persisted == {"seeded": "yes", "added": "by the sdk"}


def test_cli_with_tls_prints_the_ca_and_serves_https(tmp_path: Path) -> None:
    with cli("--tls", "--tls-dir", str(tmp_path / "tls")) as process:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        ca = Path(process.stdout.readline().strip())
        assert line.startswith("Endpoint=https://127.0.0.1:")
        assert ca == tmp_path / "tls" / ca.name and ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
        client = AzureAppConfigurationClient.from_connection_string(line, connection_verify=str(ca), retry_total=0)
        client.set_configuration_setting(ConfigurationSetting(key="over", value="tls"))
        assert client.get_configuration_setting("over").value == "tls"


def test_cli_refuses_half_a_credential() -> None:
    result = subprocess.run([sys.executable, "-m", "appconfig_sync", "emulator", "--id", "only-id"],
                            capture_output=True, text=True, env={**os.environ, "APPCONFIG_EMULATOR_SECRET": ""},
                            timeout=30)  # fmt: skip
    assert result.returncode == 2 and "--id and --secret" in result.stderr and result.stdout == ""
