"""The Lease elector against an in-memory Lease API with resourceVersion checks and a fake clock."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from appconfig_sync.leader import LeaseElector, LeaseForbidden, Record, Timings, may_take, micro_time


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLeases:
    """One namespace's Leases, with the API server's optimistic concurrency on resourceVersion."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.forbidden = False
        self.down = False
        self.writes = 0

    def _check(self) -> None:
        if self.forbidden:
            raise ApiException(status=403, reason="Forbidden")
        if self.down:
            raise ApiException(status=503, reason="Service Unavailable")

    def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> client.V1Lease:
        self._check()
        if name not in self.leases:
            raise ApiException(status=404, reason="Not Found")
        body = self.leases[name]
        spec = body["spec"]
        return client.V1Lease(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace, resource_version=body["metadata"]["resourceVersion"]),
            spec=client.V1LeaseSpec(
                holder_identity=spec.get("holderIdentity"),
                lease_duration_seconds=spec.get("leaseDurationSeconds"),
                renew_time=spec.get("renewTime"),
                acquire_time=spec.get("acquireTime"),
                lease_transitions=spec.get("leaseTransitions"),
            ),
        )

    def _store(self, name: str, body: dict[str, Any]) -> None:
        self.version += 1
        self.writes += 1
        self.leases[name] = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self._check()
        name = body["metadata"]["name"]
        if name in self.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        self._store(name, body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self._check()
        if self.leases[name]["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise ApiException(status=409, reason="Conflict")
        self._store(name, body)


def elector(api: FakeLeases, identity: str, clock: Clock) -> LeaseElector:
    return LeaseElector(api, "ns", "appconfig-sync", identity, Timings(), clock)  # type: ignore[arg-type]


def test_first_candidate_creates_the_lease_and_the_second_waits() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert api.leases["appconfig-sync"]["spec"]["holderIdentity"] == "a"
    assert api.leases["appconfig-sync"]["spec"]["leaseDurationSeconds"] == 15


def test_a_standby_takes_over_only_after_the_record_is_unchanged_for_the_lease_duration() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b first sees the record now
    clock.now += 10
    assert a.try_acquire_or_renew()  # a renews: b's expiry clock restarts when it sees the new record
    clock.now += 10
    assert not b.try_acquire_or_renew()
    clock.now += 14.9
    assert not b.try_acquire_or_renew()
    clock.now += 0.2  # a has been silent for 15s of b's clock
    assert b.try_acquire_or_renew()
    spec = api.leases["appconfig-sync"]["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


def test_the_old_leader_gives_up_before_anyone_may_take_over() -> None:
    timings = Timings()
    assert timings.renew_deadline < timings.lease_duration
    assert timings.failover_bound == 19


def test_concurrent_writers_cannot_both_win() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    a.try_acquire_or_renew()
    # Both have read the same record; whoever writes second fails on resourceVersion.
    stale = Record.of(api.read_namespaced_lease("appconfig-sync", "ns"))
    a.try_acquire_or_renew()  # a renews, bumping the version
    assert not b._write(stale, clock())
    assert api.leases["appconfig-sync"]["spec"]["holderIdentity"] == "a"


def test_release_lets_a_standby_take_over_at_once() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert api.leases["appconfig-sync"]["spec"]["holderIdentity"] is None
    assert b.try_acquire_or_renew()


def test_release_does_nothing_when_another_holds_the_lease() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    a.try_acquire_or_renew()
    writes = api.writes
    b.release()
    assert api.writes == writes


def test_forbidden_says_which_permissions_are_missing() -> None:
    api, clock = FakeLeases(), Clock()
    api.forbidden = True
    with pytest.raises(LeaseForbidden, match="get, create and update on leases.coordination.k8s.io in namespace ns"):
        elector(api, "a", clock).acquire(threading.Event())


def test_keep_renewing_reports_loss_when_the_api_is_down_past_the_deadline() -> None:
    api = FakeLeases()
    fast = Timings(lease_duration=0.6, renew_deadline=0.3, renew_interval=0.1, retry_period=0.05)
    a = LeaseElector(api, "ns", "l", "a", fast)  # type: ignore[arg-type]
    assert a.try_acquire_or_renew()
    api.down = True
    lost: list[str] = []
    a.keep_renewing(threading.Event(), lost.append)  # returns once lost
    assert lost and "could not renew" in lost[0]


def test_keep_renewing_reports_loss_when_another_holds_the_lease() -> None:
    api = FakeLeases()
    fast = Timings(lease_duration=0.6, renew_deadline=0.3, renew_interval=0.1, retry_period=0.05)
    a = LeaseElector(api, "ns", "l", "a", fast)  # type: ignore[arg-type]
    assert a.try_acquire_or_renew()
    api.leases["l"]["spec"]["holderIdentity"] = "intruder"
    lost: list[str] = []
    a.keep_renewing(threading.Event(), lost.append)
    assert lost == ["Lease ns/l is now held by intruder"]


def test_keep_renewing_stops_quietly_when_asked() -> None:
    api = FakeLeases()
    fast = Timings(lease_duration=0.6, renew_deadline=0.3, renew_interval=0.1, retry_period=0.05)
    a = LeaseElector(api, "ns", "l", "a", fast)  # type: ignore[arg-type]
    a.try_acquire_or_renew()
    stop, lost = threading.Event(), []
    thread = threading.Thread(target=a.keep_renewing, args=(stop, lost.append))
    thread.start()
    threading.Event().wait(0.35)  # longer than the deadline: renewals must have kept it
    stop.set()
    thread.join(2)
    assert not thread.is_alive() and lost == []
    assert api.writes >= 3


def test_may_take() -> None:
    record = Record("other", 15, None, None, 0, "1")
    assert may_take(Record(None, None, None, None, 0, "1"), "me", 0, 0, 15)
    assert may_take(Record("me", 15, None, None, 0, "1"), "me", 0, 0, 15)
    assert not may_take(record, "me", observed_at=100, now=114, default_duration=15)
    assert may_take(record, "me", observed_at=100, now=115, default_duration=15)


def test_micro_time_always_has_six_fraction_digits() -> None:
    assert micro_time(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)) == "2024-01-02T03:04:05.000000Z"


def test_lead_runs_the_work_as_leader_and_releases_afterwards() -> None:
    from appconfig_sync import leader
    from appconfig_sync.metrics import LEADER

    api = FakeLeases()
    a = LeaseElector(api, "ns", "l", "a")  # type: ignore[arg-type]
    seen: list[tuple[str | None, float]] = []

    def work() -> None:
        seen.append((api.leases["l"]["spec"]["holderIdentity"], LEADER._value.get()))

    assert leader.lead(a, work) == 0
    assert seen == [("a", 1.0)]
    assert api.leases["l"]["spec"]["holderIdentity"] is None and LEADER._value.get() == 0


def test_lead_exits_2_when_the_lease_is_forbidden() -> None:
    from appconfig_sync import leader

    api = FakeLeases()
    api.forbidden = True
    ran: list[bool] = []
    assert leader.lead(LeaseElector(api, "ns", "l", "a"), lambda: ran.append(True)) == 2  # type: ignore[arg-type]
    assert ran == []
