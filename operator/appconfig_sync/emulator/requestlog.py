"""A record of every request the emulator answered, so tests and benchmarks can count what a client sent."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RequestRecord:
    method: str
    route: str  # route name, e.g. "kv", "kv-item", "snapshots"; "unknown" when nothing matched
    path: str  # raw path and query as sent
    status: int  # 0 when the connection was dropped on purpose
    conditional: bool  # If-Match or If-None-Match was sent
    time: float  # seconds since the epoch, when the request arrived
    duration_ms: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Thread-safe and bounded, so a long-running emulator does not grow without end."""

    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._limit = limit

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            if len(self._records) > self._limit:
                del self._records[: len(self._records) - self._limit]

    def records(
        self,
        *,
        route: str | None = None,
        method: str | None = None,
        status: int | None = None,
        conditional: bool | None = None,
        path_prefix: str | None = None,
    ) -> list[RequestRecord]:
        with self._lock:
            found = list(self._records)
        return [
            r
            for r in found
            if (route is None or r.route == route)
            and (method is None or r.method == method.upper())
            and (status is None or r.status == status)
            and (conditional is None or r.conditional == conditional)
            and (path_prefix is None or r.path.startswith(path_prefix))
        ]

    def count(self, **filters: Any) -> int:
        return len(self.records(**filters))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

