"""High availability: two operator processes with --leader-elect, one active; failover without double writes.

Both processes run as the same ServiceAccount, so the audit log cannot tell them apart: which one works is
read from their logs and the Lease, and "no duplicate work" from counting all of the operator's writes.
"""

from __future__ import annotations

import signal
import time

import pytest
import yaml
from kubernetes import client

from appconfig_sync.emulator.server import EmulatorServer

from e2e_support import OPERATOR_NAMESPACE, OPERATOR_SA, REPO, Audit, Kube, OperatorProcess, put, wait_for

pytestmark = pytest.mark.cluster

LEASE = "appconfig-sync"
FAILOVER_BOUND = 15 + 2 * 2  # lease duration + two retry periods (docs/operations.md)


LEADER_RBAC = REPO / "deploy" / "base" / "leader-election.yaml"


def grant_lease_rbac(kube: Kube) -> None:
    """deploy/'s leader-election Role and RoleBinding, in the test's namespace (the Lease's namespace here),
    bound to the test's operator ServiceAccount: the Lease works with exactly the permissions we ship."""
    if not LEADER_RBAC.exists():
        pytest.fail(f"{LEADER_RBAC.relative_to(REPO)} is missing: the operator needs a Role for its Lease")
    for doc in yaml.safe_load_all(LEADER_RBAC.read_text()):
        if not doc:
            continue
        doc["metadata"]["namespace"] = kube.namespace
        if doc["kind"] == "RoleBinding":
            doc["subjects"] = [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": OPERATOR_NAMESPACE}]
        kube.apply(doc)
    user = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"
    wait_for(  # RBAC reaches the authorizer through a watch: let it arrive before the candidates start
        lambda: kube.cluster.kubectl("auth", "can-i", "update", f"leases.coordination.k8s.io/{LEASE}",
                                     "-n", kube.namespace, "--as", user, check=False).stdout.strip() == "yes",
        what="the leader-election Role to take effect",
    )


def start_pair(kube: Kube, start_operator) -> tuple[OperatorProcess, OperatorProcess]:
    """Starts two candidates; returns (active, standby) once one holds the Lease and the other waits."""
    grant_lease_rbac(kube)
    args = ("--leader-elect", "--leader-election-namespace", kube.namespace, "--leader-election-id", LEASE)
    first = start_operator(*args)
    wait_for(lambda: acquired(first) or failed(first), timeout=30, what="the first candidate to take the Lease")
    second = start_operator(*args)
    wait_for(lambda: "is held by" in second.log or failed(second), timeout=30, what="the second to wait")
    return first, second


def acquired(operator: OperatorProcess) -> bool:
    return "acquired Lease" in operator.log


def failed(operator: OperatorProcess) -> bool:
    """A candidate that cannot use the Lease exits at once: fail with its reason instead of waiting."""
    if "not allowed to" in operator.log:
        pytest.fail(f"the operator may not use its Lease (RBAC in deploy/ must grant it):\n{operator.log[-1500:]}")
    if operator.proc is not None and operator.proc.poll() is not None:
        pytest.fail(f"operator exited with {operator.proc.returncode}:\n{operator.log[-3000:]}")
    return False


def holder(kube: Kube) -> str:
    lease = client.CoordinationV1Api(kube.cluster.api_client()).read_namespaced_lease(LEASE, kube.namespace)
    return lease.spec.holder_identity or ""


def configmap_writes(audit: Audit, mark: int, namespace: str) -> list[str]:
    return [w for w in audit.operator_writes(mark, namespace) if " configmaps/" in w]


def test_standby_takes_over_after_kill_and_nothing_is_written_twice(
    kube: Kube, store, emulator: EmulatorServer, start_operator, audit: Audit
) -> None:
    put(store, "message", "hello")
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.deployment("web", "web-config")
    mark = audit.mark()
    kube.app_sync("web")
    active, standby = start_pair(kube, start_operator)

    wait_for(lambda: (kube.ready("web") or {}).get("status") == "True", what="Ready")
    assert kube.data("web-config") == {"message": "hello", "Sentinel": "1"}
    # Only the leader works: the standby started no kopf and touched neither the store nor the ConfigMap.
    assert not acquired(standby) and "standby: waiting for Lease" in standby.log
    assert "ConfigMap web-config created" in active.log
    assert "ConfigMap" not in standby.log and "kopf" not in standby.log.lower()
    emulator.request_log.clear()
    time.sleep(6)
    checks = emulator.request_log.count(route="kv-item", method="GET")
    assert 1 <= checks <= 8, f"{checks} sentinel checks in 6s at a 1s interval: exactly one process must be checking"

    # kill -9: no release, the standby must wait for the Lease to expire.
    assert active.proc is not None
    active.proc.send_signal(signal.SIGKILL)
    active.proc.wait()
    killed = time.monotonic()
    put(store, "message", "after failover")
    put(store, "Sentinel", "2")
    wait_for(lambda: (kube.data("web-config") or {}).get("message") == "after failover",
             timeout=FAILOVER_BOUND + 30, what="the standby to take over and sync the change")
    took = time.monotonic() - killed
    print(f"\nfailover: the change reached the ConfigMap {took:.1f}s after kill -9 (bound {FAILOVER_BOUND}s + start-up)")
    assert acquired(standby)
    assert holder(kube).startswith(standby_identity(standby))
    wait_for(lambda: len(kube.replica_sets("web")) == 2, what="the rollout after failover")
    time.sleep(3)  # a few intervals more: any duplicate write would show up

    writes = configmap_writes(audit, mark, kube.namespace)
    assert writes.count("create configmaps/web-config") == 1, writes
    assert writes.count("patch configmaps/web-config") == 1, writes
    assert len(writes) == 2, writes
    rollouts = [w for w in audit.operator_writes(mark, kube.namespace) if w == "patch deployments/web"]
    assert len(rollouts) == 1, rollouts


def standby_identity(operator: OperatorProcess) -> str:
    line = next(line for line in operator.log.splitlines() if "standby: waiting for Lease" in line)
    return line.rsplit(" as ", 1)[1].strip()


def test_sigterm_releases_the_lease_so_the_standby_takes_over_without_waiting_for_expiry(
    kube: Kube, store, emulator: EmulatorServer, start_operator
) -> None:
    put(store, "Sentinel", "1")
    kube.connection_secret(emulator.connection_string)
    kube.app_sync("web")
    active, standby = start_pair(kube, start_operator)
    wait_for(lambda: (kube.ready("web") or {}).get("status") == "True", what="Ready")

    active.stop(signal.SIGTERM)
    assert active.proc is not None and active.proc.returncode == 0, active.log[-2000:]
    assert "released Lease" in active.log
    stopped = time.monotonic()
    # Well under the 15s lease duration: the standby saw an empty holder, not an expired Lease.
    wait_for(lambda: acquired(standby), timeout=10, what="the standby to take the released Lease")
    print(f"\nhandover after SIGTERM: {time.monotonic() - stopped:.1f}s")
    put(store, "Sentinel", "2")
    wait_for(lambda: (kube.data("web-config") or {}).get("Sentinel") == "2", timeout=30, what="the new leader syncing")
