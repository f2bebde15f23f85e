"""Shared fixtures: one real local control plane per test session, a fresh namespace per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane import ControlPlane, ControlPlaneError, up, down

REPO = Path(__file__).resolve().parent.parent


def _running(directory: Path) -> bool:
    if not (directory / "state.json").exists():
        return False
    return ControlPlane(directory).kubectl("get", "--raw", "/readyz", check=False).returncode == 0


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """Starts a control plane for the session (or, with APPCONFIG_SYNC_REUSE_CLUSTER=1, uses the one from
    `make cluster`: quicker while developing, but `make demo`'s operator would then see the tests' objects).

    A started one is stopped at the end; its logs are kept (and their path printed) when tests failed.
    """
    shared = REPO / ".cluster"
    if os.environ.get("APPCONFIG_SYNC_REUSE_CLUSTER") == "1" and _running(shared):
        yield ControlPlane(shared)
        return
    directory = shared / f"pytest-{os.getpid()}"
    try:
        plane = up(directory)
    except ControlPlaneError as exc:
        pytest.exit(f"local control plane: {exc}", returncode=3)
    yield plane
    down(directory)
    if request.session.testsfailed:
        print(f"\ncontrol plane logs kept in {directory / 'logs'}")
    else:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def crds(cluster: ControlPlane) -> None:
    """The project's CRDs, applied once and Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds"))


@pytest.fixture
def namespace(cluster: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{request.node.name[:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:6]}"
    name = "".join(c for c in name if c.isalnum() or c == "-")
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Anything using the control plane is a cluster test, whether or not it says so.
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
