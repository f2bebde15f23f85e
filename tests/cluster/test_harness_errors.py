"""The harness fails clearly: which component, which log, and nothing left running."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import controlplane
from controlplane import ControlPlaneError

REPO = Path(__file__).resolve().parents[2]


def test_missing_go_toolchain_is_named(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "APPCONFIG_SYNC_CACHE": str(tmp_path / "cache")}
    assert not any(Path(p, "go").exists() for p in env["PATH"].split(":"))
    result = subprocess.run(["bash", str(REPO / "hack/build-control-plane.sh")], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "Go toolchain" in result.stderr and "'go'" in result.stderr


def test_unbuilt_binaries_point_to_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPCONFIG_SYNC_CACHE", str(tmp_path))
    with pytest.raises(ControlPlaneError, match="make control-plane"):
        controlplane.up(tmp_path / "plane")


def test_component_not_ready_names_it_and_its_log_and_stops_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    controlplane.Binaries.from_cache().check()
    # etcd comes up; the API server cannot be ready in 10 ms, so startup must fail on it and stop etcd.
    real_wait = controlplane._wait_ready

    def impatient(name, proc, url, logs, context):
        if name == "kube-apiserver":
            monkeypatch.setattr(controlplane, "READY_TIMEOUT", 0.01)
        return real_wait(name, proc, url, logs, context)

    monkeypatch.setattr(controlplane, "_wait_ready", impatient)
    started: list[int] = []
    real_start = controlplane._start
    monkeypatch.setattr(controlplane, "_start", lambda *a: started.append((p := real_start(*a)).pid) or p)
    with pytest.raises(ControlPlaneError) as failure:
        controlplane.up(tmp_path / "plane")
    message = str(failure.value)
    assert "kube-apiserver did not become ready" in message
    assert str(tmp_path / "plane" / "logs" / "kube-apiserver.log") in message
    assert len(started) == 2
    assert not any(Path(f"/proc/{pid}").exists() for pid in started)
    assert not (tmp_path / "plane" / "state.json").exists()

