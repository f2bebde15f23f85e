"""Leader election with a coordination.k8s.io/v1 Lease: of several replicas, only the holder runs kopf.

Why our own small elector rather than `kubernetes.leaderelection`: that one runs the work in a thread it
starts itself, uses the client's global default configuration, never releases the Lease on shutdown (so a
rolling update waits a full lease duration), keeps retrying silently when RBAC forbids the Lease, and writes
Lease times with `str(datetime)`. The protocol below is client-go's, with its default timings:

- A candidate may take the Lease when nobody holds it, or when the record it sees has not changed for
  `lease_duration` seconds of *its own* clock since it first saw that record (no cross-node clock
  comparison, as in client-go). Writes carry the read resourceVersion, so two candidates cannot both win.
- The leader renews every `renew_interval`; if no renewal has succeeded for `renew_deadline` seconds it
  gives up (the caller exits the process). renew_deadline < lease_duration, so the old leader has stopped
  before any standby can take over, with `lease_duration - renew_deadline` seconds to spare.
- On graceful shutdown the leader releases the Lease (empty holder), so a standby takes it at its next try.

Failover after the leader dies without releasing: at most lease_duration + 2 * retry_period (the standby
sees the last renewal at most one retry late and tries again at most one retry after expiry), i.e. 19 s
with the defaults, plus kopf's start-up.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubernetes import client
from kubernetes.client.rest import ApiException

logger = logging.getLogger("appconfig_sync.leader")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_NAMESPACE = "appconfig-sync-system"
DEFAULT_ID = "appconfig-sync"


class LeaseForbidden(Exception):
    """RBAC does not allow the Lease: retrying cannot help, so say what is missing and stop."""


@dataclass(frozen=True)
class Timings:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    renew_interval: float = 5.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.renew_interval < self.renew_deadline < self.lease_duration:
            raise ValueError("need renew_interval < renew_deadline < lease_duration")

    @property
    def failover_bound(self) -> float:
        """Worst case from the leader's death (without release) to a standby holding the Lease."""
        return self.lease_duration + 2 * self.retry_period


@dataclass(frozen=True)
class Record:
    """What a Lease says, reduced to what the election needs."""

    holder: str | None
    duration: float | None
    renew_time: str | None
    acquire_time: str | None
    transitions: int
    resource_version: str | None

    @classmethod
    def of(cls, lease: Any) -> Record:
        spec = lease.spec or client.V1LeaseSpec()
        return cls(
            holder=spec.holder_identity or None,
            duration=spec.lease_duration_seconds,
            renew_time=_stamp(spec.renew_time),
            acquire_time=_stamp(spec.acquire_time),
            transitions=spec.lease_transitions or 0,
            resource_version=lease.metadata.resource_version,
        )


def may_take(record: Record, identity: str, observed_at: float, now: float, default_duration: float) -> bool:
    """Whether `identity` may write itself into the Lease, judged by the local time the record was first seen."""
    if record.holder is None or record.holder == identity:
        return True
    return now >= observed_at + (record.duration or default_duration)


def micro_time(now: dt.datetime | None = None) -> str:
    """A MicroTime as the API server writes it (always six fraction digits, UTC)."""
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamp(value: Any) -> str | None:
    if value is None:
        return None
    return micro_time(value) if isinstance(value, dt.datetime) else str(value)


def default_identity() -> str:
    """Pod name (from the downward API) or host name, plus a random suffix: a restarted process is a new candidate."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


def default_namespace() -> str:
    """The pod's own namespace when running in a cluster; otherwise the install's default namespace."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or DEFAULT_NAMESPACE
    except OSError:
        return os.environ.get("POD_NAMESPACE") or DEFAULT_NAMESPACE


class LeaseElector:
    """Acquire, renew and release one Lease. Blocking calls, meant for the main thread and one renew thread."""

    def __init__(
        self, api: client.CoordinationV1Api, namespace: str, name: str, identity: str,
        timings: Timings = Timings(), clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.timings, self.clock = timings, clock
        self.observed: Record | None = None
        self.observed_at = 0.0
        self.last_renewed: float | None = None  # local time of the start of the last successful write

    @property
    def where(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    # -- one attempt -------------------------------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One read and at most one write. True when this candidate holds the Lease afterwards."""
        started = self.clock()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self._timeout())
        except ApiException as exc:
            self._raise_if_forbidden(exc, "get")
            if exc.status != 404:
                logger.warning("reading %s failed: HTTP %s %s", self.where, exc.status, exc.reason)
                return False
            return self._write(None, started)
        except Exception as exc:  # noqa: BLE001 - network errors: try again next period
            logger.warning("reading %s failed: %s", self.where, exc)
            return False
        record = Record.of(lease)
        self._observe(record)
        if not may_take(record, self.identity, self.observed_at, self.clock(), self.timings.lease_duration):
            return False
        return self._write(record, started)

    def _observe(self, record: Record) -> None:
        if record != self.observed:  # a new renewal or holder: restart the expiry clock
            self.observed, self.observed_at = record, self.clock()

    def _write(self, current: Record | None, started: float) -> bool:
        now = micro_time()
        taking_over = current is None or current.holder != self.identity
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.timings.lease_duration),
            "renewTime": now,
            "acquireTime": now if taking_over or not current or not current.acquire_time else current.acquire_time,
            "leaseTransitions": (current.transitions if current else 0) + (1 if current and taking_over else 0),
        }
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec,
        }
        timeout = self._timeout()
        try:
            if current is None:
                self.api.create_namespaced_lease(self.namespace, body, _request_timeout=timeout)
            else:
                body["metadata"]["resourceVersion"] = current.resource_version  # optimistic concurrency
                self.api.replace_namespaced_lease(self.name, self.namespace, body, _request_timeout=timeout)
        except ApiException as exc:
            self._raise_if_forbidden(exc, "create" if current is None else "update")
            if exc.status != 409:  # 409: another candidate wrote first; not worth a warning
                logger.warning("writing %s failed: HTTP %s %s", self.where, exc.status, exc.reason)
            return False
        except Exception as exc:  # noqa: BLE001
            logger.warning("writing %s failed: %s", self.where, exc)
            return False
        self.last_renewed = started
        if taking_over:
            logger.info("acquired %s as %s", self.where, self.identity)
        return True

    def _timeout(self) -> float:
        """A hung request must not carry a leader past its renew deadline; standbys may wait longer."""
        limit = 2 * self.timings.retry_period
        if self.last_renewed is None:
            return limit
        return max(0.5, min(limit, self._deadline_left()))

    def _raise_if_forbidden(self, exc: ApiException, verb: str) -> None:
        if exc.status == 403:
            raise LeaseForbidden(
                f"not allowed to {verb} {self.where}: the operator's ServiceAccount needs get, create and "
                f"update on leases.coordination.k8s.io in namespace {self.namespace}"
            ) from exc

    # -- the loops ---------------------------------------------------------------------------------------

    def acquire(self, stop: threading.Event) -> bool:
        """Wait as a standby until this candidate holds the Lease (True) or `stop` is set (False)."""
        logger.info("standby: waiting for %s as %s", self.where, self.identity)
        reported: str | None = None
        while not stop.is_set():
            if self.try_acquire_or_renew():
                return True
            holder = self.observed.holder if self.observed else None
            if holder and holder != reported:
                logger.info("standby: %s is held by %s; waiting", self.where, holder)
                reported = holder
            stop.wait(self.timings.retry_period)
        return False

    def keep_renewing(self, stop: threading.Event, on_lost: Callable[[str], None]) -> None:
        """Renew until `stop`; call `on_lost` (once) when the Lease can no longer be held."""
        delay = self.timings.renew_interval
        while not stop.wait(min(delay, self._deadline_left())):
            try:
                ok = self.try_acquire_or_renew()
            except LeaseForbidden as exc:
                on_lost(str(exc))
                return
            if ok:
                delay = self.timings.renew_interval
                continue
            holder = self.observed.holder if self.observed else None
            if holder not in (None, self.identity):
                on_lost(f"{self.where} is now held by {holder}")
                return
            if self._deadline_left() <= 0:
                on_lost(f"could not renew {self.where} for {self.timings.renew_deadline:.0f}s")
                return
            delay = self.timings.retry_period

    def _deadline_left(self) -> float:
        if self.last_renewed is None:
            return 0.0
        return max(0.0, self.last_renewed + self.timings.renew_deadline - self.clock())

    def release(self) -> None:
        """Give the Lease up (graceful shutdown) so a standby need not wait for it to expire."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=5)
            record = Record.of(lease)
            if record.holder != self.identity:
                return
            now = micro_time()
            body = {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace, "resourceVersion": record.resource_version},
                # client-go's release: no holder, a 1 s duration.
                "spec": {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": now, "acquireTime": now,
                         "leaseTransitions": record.transitions},
            }
            self.api.replace_namespaced_lease(self.name, self.namespace, body, _request_timeout=5)
            logger.info("released %s", self.where)
        except Exception as exc:  # noqa: BLE001 - the Lease then simply expires
            logger.warning("could not release %s (it expires on its own): %s", self.where, exc)


# -- running the operator as the leader ------------------------------------------------------------------


def lead(elector: LeaseElector, work: Callable[[], None], liveness: str | None = None) -> int:
    """Wait for the Lease, then run `work` (kopf) while renewing it; release it when `work` returns.

    The standby runs nothing of the operator: no watches, no writes, only the Lease reads (and the liveness
    endpoint, so a probe does not kill it). Losing the Lease exits the process at once (status 1), as
    controller-runtime does: Kubernetes restarts it, and it comes back as a standby.
    """
    from appconfig_sync.metrics import LEADER

    stop = threading.Event()
    try:
        with _stop_on_signals(stop), standby_health(liveness):
            if not elector.acquire(stop):
                logger.info("standby: stopped before becoming the leader")
                return 0
    except LeaseForbidden as exc:
        logger.error("leader election: %s", exc)
        return 2
    LEADER.set(1)
    renewing = threading.Event()
    renewer = threading.Thread(
        target=elector.keep_renewing, args=(renewing, exit_lost), name="lease-renewer", daemon=True
    )
    renewer.start()
    try:
        work()
    finally:
        # Keep renewing while kopf shuts its daemons down, then hand over without waiting for expiry.
        renewing.set()
        renewer.join(timeout=elector.timings.renew_deadline)
        elector.release()
        LEADER.set(0)
    return 0


def exit_lost(reason: str) -> None:
    """Stop all work now: another replica may take over as soon as the Lease expires."""
    logger.critical("lost leadership: %s; exiting so this replica restarts as a standby", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)  # not sys.exit: that would wait for kopf's graceful shutdown, and keep writing meanwhile


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT while a standby: stop waiting and exit cleanly (there is nothing to release)."""
    saved = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b'{"standby": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:  # probes every few seconds: no access log
        pass


@contextmanager
def standby_health(url: str | None) -> Iterator[None]:
    """Answer the liveness URL while a standby (kopf, which normally serves it, is not running yet)."""
    if not url:
        yield
        return
    parsed = urlparse(url)
    ThreadingHTTPServer.allow_reuse_address = True  # kopf binds the same port right after
    server = ThreadingHTTPServer((parsed.hostname or "0.0.0.0", parsed.port or 80), _Ok)
    threading.Thread(target=server.serve_forever, name="standby-health", daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
