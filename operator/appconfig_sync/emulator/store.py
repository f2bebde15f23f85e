"""The emulator's data: key-values by (key, label), their revisions, snapshots and the sync token.

One lock guards everything, because the store is shared by the server's event loop thread and
by tests that seed or inspect it directly. With a data file, every change is written to it
atomically (temp file + rename) before the change is acknowledged, so a restart loses nothing.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from .filters import NameFilter, TagFilter
from .problems import ApiError

MAX_KV_BYTES = 10 * 1024
DEFAULT_RETENTION = 30 * 24 * 3600
MIN_RETENTION = 3600
MAX_RETENTION = 90 * 24 * 3600
MAX_SNAPSHOT_FILTERS = 3

Label = str | None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_etag() -> str:
    return secrets.token_urlsafe(24)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class KeyValue:
    key: str
    label: Label = None
    value: str | None = None
    content_type: str | None = None
    tags: dict[str, str | None] = field(default_factory=dict)
    locked: bool = False
    etag: str = field(default_factory=new_etag)
    last_modified: datetime = field(default_factory=utcnow)

    @property
    def ident(self) -> tuple[str, Label]:
        return (self.key, self.label)

    def size(self) -> int:
        """Bytes counted against the service's 10 KB limit: key, label, value, content type and tags."""
        parts = [self.key, self.label or "", self.value or "", self.content_type or ""]
        parts += [name + (value or "") for name, value in self.tags.items()]
        return sum(len(part.encode("utf-8")) for part in parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "etag": self.etag,
            "key": self.key,
            "label": self.label,
            "content_type": self.content_type,
            "value": self.value,
            "tags": dict(self.tags),
            "locked": self.locked,
            "last_modified": format_time(self.last_modified),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyValue:
        if not isinstance(data.get("key"), str) or not data["key"]:
            raise ValueError(f"key-value {data!r}: field 'key' must be a non-empty string")
        value = data.get("value")
        return cls(
            key=data["key"],
            label=data.get("label"),
            value=value if value is None or isinstance(value, str) else json.dumps(value),
            content_type=data.get("content_type"),
            tags={str(k): (None if v is None else str(v)) for k, v in (data.get("tags") or {}).items()},
            locked=bool(data.get("locked", False)),
            etag=data.get("etag") or new_etag(),
            last_modified=parse_time(data["last_modified"]) if data.get("last_modified") else utcnow(),
        )


@dataclass(frozen=True)
class Revision:
    """A key-value as it was after a change; `deleted` marks the change that removed it."""

    kv: KeyValue
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**self.kv.to_json(), "deleted": self.deleted}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Revision:
        return cls(KeyValue.from_json(data), bool(data.get("deleted", False)))


@dataclass(frozen=True)
class SnapshotFilter:
    key: str
    label: str | None = None
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "label": self.label}
        if self.tags:
            data["tags"] = list(self.tags)
        return data


@dataclass(frozen=True)
class Snapshot:
    name: str
    filters: tuple[SnapshotFilter, ...]
    composition_type: str
    items: tuple[KeyValue, ...]
    retention_period: int = DEFAULT_RETENTION
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    status: str = "ready"
    created: datetime = field(default_factory=utcnow)
    expires: datetime | None = None
    etag: str = field(default_factory=new_etag)

    def to_json(self) -> dict[str, Any]:
        return {
            "etag": self.etag,
            "name": self.name,
            "status": self.status,
            "filters": [f.to_json() for f in self.filters],
            "composition_type": self.composition_type,
            "created": format_time(self.created),
            "expires": format_time(self.expires) if self.expires else None,
            "retention_period": self.retention_period,
            "size": sum(kv.size() for kv in self.items),
            "items_count": len(self.items),
            "tags": dict(self.tags),
            "description": self.description,
        }

    def to_persisted(self) -> dict[str, Any]:
        return {**self.to_json(), "items": [kv.to_json() for kv in self.items]}


def sort_key(ident: tuple[str, Label]) -> tuple[str, int, str]:
    """Order by key, the null label first, then labels."""
    key, label = ident
    return (key, 0 if label is None else 1, label or "")


@dataclass
class Selection:
    """What a list request asks for: key/label/tag filters and an optional point in time."""

    keys: NameFilter
    labels: NameFilter
    tags: list[TagFilter]
    as_of: datetime | None = None

    def matches(self, kv: KeyValue) -> bool:
        return self.keys.matches(kv.key) and self.labels.matches(kv.label) and all(t.matches(kv.tags) for t in self.tags)


class Store:
    """Thread-safe key-value store; `path` makes it durable."""

    def __init__(self, path: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._items: dict[tuple[str, Label], KeyValue] = {}
        self._revisions: list[Revision] = []
        self._snapshots: dict[str, Snapshot] = {}
        self._sequence = 0
        self._token_id = secrets.token_hex(4)
        self.path = path
        if path is not None and path.exists():
            self._load(path)

    # -- reading ---------------------------------------------------------------------------

    @property
    def sync_token(self) -> str:
        with self._lock:
            value = base64.b64encode(str(self._sequence).encode()).decode()
            return f"{self._token_id}={value};sn={self._sequence}"

    def get(self, key: str, label: Label, as_of: datetime | None = None) -> KeyValue | None:
        with self._lock:
            if as_of is None:
                return self._items.get((key, label))
            return self._state_at(as_of).get((key, label))

    def list(self, selection: Selection) -> list[KeyValue]:
        with self._lock:
            items = self._items if selection.as_of is None else self._state_at(selection.as_of)
            return [items[i] for i in sorted(items, key=sort_key) if selection.matches(items[i])]

    def revisions(self, selection: Selection) -> list[KeyValue]:
        """Newest first, like the service; deletions are not listed."""
        with self._lock:
            found = [
                r.kv
                for r in reversed(self._revisions)
                if not r.deleted
                and selection.matches(r.kv)
                and (selection.as_of is None or r.kv.last_modified <= selection.as_of)
            ]
            return found

    def snapshot(self, name: str) -> Snapshot | None:
        with self._lock:
            return self._expire(name)

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            return [s for name in sorted(self._snapshots) if (s := self._expire(name)) is not None]

    def _state_at(self, moment: datetime) -> dict[tuple[str, Label], KeyValue]:
        state: dict[tuple[str, Label], KeyValue] = {}
        for rev in self._revisions:
            if rev.kv.last_modified > moment:
                break
            if rev.deleted:
                state.pop(rev.kv.ident, None)
            else:
                state[rev.kv.ident] = rev.kv
        return state

    def _expire(self, name: str) -> Snapshot | None:
        snap = self._snapshots.get(name)
        if snap is not None and snap.status == "archived" and snap.expires and snap.expires <= utcnow():
            del self._snapshots[name]
            self._persist()
            return None
        return snap

    # -- writing ---------------------------------------------------------------------------

    def put(
        self,
        key: str,
        label: Label,
        *,
        value: str | None,
        content_type: str | None,
        tags: dict[str, str | None],
        check: Callable[[KeyValue | None], None] | None = None,
    ) -> KeyValue:
        """Create or replace; `check` sees the current item and raises ApiError to refuse."""
        with self._lock:
            current = self._items.get((key, label))
            if check is not None:
                check(current)
            if current is not None and current.locked:
                raise _locked(key, label)
            kv = KeyValue(key=key, label=label, value=value, content_type=content_type, tags=dict(tags))
            if kv.size() > MAX_KV_BYTES:
                raise ApiError(
                    413,
                    "kv-too-large",
                    "Key-value too large",
                    f"key-value '{key}' (label {label!r}) is {kv.size()} bytes; the limit for key, label, value, "
                    f"content type and tags together is {MAX_KV_BYTES} bytes: store less in one key-value",
                )
            self._commit(kv)
            return kv

    def delete(self, key: str, label: Label, check: Callable[[KeyValue | None], None] | None = None) -> KeyValue | None:
        with self._lock:
            current = self._items.get((key, label))
            if check is not None:
                check(current)
            if current is None:
                return None
            if current.locked:
                raise _locked(key, label)
            del self._items[current.ident]
            self._revisions.append(Revision(replace(current, last_modified=utcnow()), deleted=True))
            self._sequence += 1
            self._persist()
            return current

    def set_lock(
        self, key: str, label: Label, locked: bool, check: Callable[[KeyValue | None], None] | None = None
    ) -> KeyValue | None:
        with self._lock:
            current = self._items.get((key, label))
            if check is not None:
                check(current)
            if current is None:
                return None
            kv = replace(current, locked=locked, etag=new_etag(), last_modified=utcnow())
            self._commit(kv)
            return kv

    def _commit(self, kv: KeyValue) -> None:
        self._items[kv.ident] = kv
        self._revisions.append(Revision(kv))
        self._sequence += 1
        self._persist()

    def create_snapshot(
        self,
        name: str,
        filters: list[SnapshotFilter],
        composition_type: str,
        retention_period: int,
        tags: dict[str, str],
        description: str | None,
        select: Callable[[SnapshotFilter], Selection],
    ) -> Snapshot:
        with self._lock:
            if self._expire(name) is not None:
                raise ApiError(
                    409, "snapshot-exists", "Snapshot already exists", f"snapshot '{name}' exists; pick another name"
                )
            chosen: dict[Any, KeyValue] = {}
            for flt in filters:
                for kv in self.list(select(flt)):
                    # "key" composition: one value per key, later filters win.
                    chosen[kv.key if composition_type == "key" else kv.ident] = kv
            items = tuple(sorted(chosen.values(), key=lambda kv: sort_key(kv.ident)))
            snap = Snapshot(
                name=name,
                filters=tuple(filters),
                composition_type=composition_type,
                items=items,
                retention_period=retention_period,
                tags=dict(tags),
                description=description,
            )
            self._snapshots[name] = snap
            self._sequence += 1
            self._persist()
            return snap

    def set_snapshot_status(self, name: str, status: str, check: Callable[[Snapshot], None] | None = None) -> Snapshot:
        with self._lock:
            snap = self._expire(name)
            if snap is None:
                raise ApiError(404, "not-found", "Snapshot not found", f"snapshot '{name}' does not exist")
            if check is not None:
                check(snap)
            if snap.status == status:
                return snap
            expires = utcnow() + timedelta(seconds=snap.retention_period) if status == "archived" else None
            snap = replace(snap, status=status, expires=expires, etag=new_etag())
            self._snapshots[name] = snap
            self._sequence += 1
            self._persist()
            return snap

    def seed(self, items: Iterable[KeyValue]) -> None:
        """Add key-values as if they had been PUT (tests and seed files use this)."""
        with self._lock:
            for kv in items:
                self._items[kv.ident] = kv
                self._revisions.append(Revision(kv))
                self._sequence += 1
            self._persist()

    # -- persistence -----------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"data file {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}")
        if data is None:
            return
        if not isinstance(data, dict):
            raise ValueError(f"data file {path}: expected a mapping with 'items' (or plain key: value pairs)")
        if not ({"items", "snapshots", "revisions"} & data.keys()):
            data = {"items": [{"key": str(k), "value": v} for k, v in data.items()]}
        try:
            items = [KeyValue.from_json(d) for d in data.get("items") or []]
            revisions = [Revision.from_json(d) for d in data.get("revisions") or []]
            snapshots = [self._snapshot_from_json(d) for d in data.get("snapshots") or []]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"data file {path}: {exc}") from exc
        self._items = {kv.ident: kv for kv in items}
        # A hand-written seed file has no history: its items become the first revisions.
        self._revisions = revisions or [Revision(kv) for kv in sorted(items, key=lambda kv: kv.last_modified)]
        self._snapshots = {s.name: s for s in snapshots}
        self._sequence = int(data.get("sequence", len(self._revisions)))
        self._token_id = str(data.get("sync_token_id", self._token_id))

    @staticmethod
    def _snapshot_from_json(data: dict[str, Any]) -> Snapshot:
        return Snapshot(
            name=data["name"],
            filters=tuple(
                SnapshotFilter(f["key"], f.get("label"), tuple(f.get("tags") or ())) for f in data.get("filters") or []
            ),
            composition_type=data.get("composition_type", "key"),
            items=tuple(KeyValue.from_json(d) for d in data.get("items") or []),
            retention_period=int(data.get("retention_period", DEFAULT_RETENTION)),
            tags=dict(data.get("tags") or {}),
            description=data.get("description"),
            status=data.get("status", "ready"),
            created=parse_time(data["created"]) if data.get("created") else utcnow(),
            expires=parse_time(data["expires"]) if data.get("expires") else None,
            etag=data.get("etag") or new_etag(),
        )

    def dump(self) -> dict[str, Any]:
        with self._lock:
            return {
                "sync_token_id": self._token_id,
                "sequence": self._sequence,
                "items": [self._items[i].to_json() for i in sorted(self._items, key=sort_key)],
                "snapshots": [s.to_persisted() for s in self._snapshots.values()],
                "revisions": [r.to_json() for r in self._revisions],
            }

    def _persist(self) -> None:
        if self.path is None:
            return
        data = self.dump()
        if self.path.suffix == ".json":
            text = json.dumps(data, indent=1, ensure_ascii=False)
        else:
            text = yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True)
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _locked(key: str, label: Label) -> ApiError:
    return ApiError(
        409,
        "key-locked",
        "Modifying key-value denied: the key-value is read-only",
        f"key-value '{key}' (label {label!r}) is locked; unlock it (DELETE /locks/{key}) before changing it",
    )
