"""Injected failures: chosen routes answer an error status, slow down, or drop the connection."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

ERROR_STATUSES = (408, 429, 500, 502, 503, 504)


@dataclass
class Fault:
    """Applies to requests whose route name equals `route` (`*` for every route except the admin API).

    It fires `count` times, or for `seconds`, or both (whichever ends first); with neither it stays
    until cleared. `status` answers with that error (and `Retry-After` when `retry_after` is set),
    `latency_ms` delays the request (then it proceeds unless `status`/`drop` is set too), and
    `drop` closes the connection without an answer.
    """

    route: str = "*"
    status: int | None = None
    retry_after: float | None = None
    count: int | None = None
    seconds: float | None = None
    latency_ms: int = 0
    drop: bool = False
    id: int = 0
    created: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in ERROR_STATUSES:
            raise ValueError(f"fault status: {self.status} is not one of {ERROR_STATUSES}")
        if self.count is not None and self.count < 1:
            raise ValueError("fault count: must be at least 1; omit it for no limit")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError("fault seconds: must be positive; omit it for no limit")
        if self.latency_ms < 0:
            raise ValueError("fault latency_ms: must not be negative")
        if self.status is None and not self.drop and not self.latency_ms:
            raise ValueError("fault: set at least one of status, latency_ms or drop")

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise ValueError("fault: expected a JSON object like {\"route\": \"kv\", \"status\": 503, \"count\": 2}")
        allowed = {"route", "status", "retry_after", "count", "seconds", "latency_ms", "drop"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"fault: unknown field(s) {sorted(unknown)}; allowed are {sorted(allowed)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"fault: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["created"]
        return data

    def live(self, now: float) -> bool:
        return (self.count is None or self.count > 0) and (self.seconds is None or now - self.created < self.seconds)


class FaultSet:
    """Thread-safe: tests add faults from their own thread while the server applies them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, fault: Fault | None = None, /, **options: Any) -> Fault:
        """Add `fault`, or one built from keyword options: `add(route="kv-item", status=503, count=2)`."""
        fault = fault or Fault(**options)
        with self._lock:
            fault.id = next(self._ids)
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            self._prune(time.monotonic())
            return list(self._faults)

    def take(self, route: str) -> Fault | None:
        """The first live fault for `route`, counting one use of it."""
        with self._lock:
            now = time.monotonic()
            self._prune(now)
            for fault in self._faults:
                if fault.route in ("*", route):
                    if fault.count is not None:
                        fault.count -= 1
                    return fault
        return None

    def _prune(self, now: float) -> None:
        self._faults = [f for f in self._faults if f.live(now)]
