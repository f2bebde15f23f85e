"""The AppConfigSync status: computed from what the last pass found, written only when it differs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """What a sync pass established. Absent fields keep their previous status value."""

    ready: bool
    reason: str
    message: str
    key_count: int | None = None
    data_hash: str | None = None
    feature_flag_count: int | None = None
    secret_key_count: int | None = None
    secret_data_hash: str | None = None
    synced: bool = False
    """True when the pass loaded the store and the targets now hold that data: stamps lastSyncTime."""
    secrets_refreshed: bool = False
    refresh_request: str | None = None
    sentinel_etag: str | None = None


def timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_condition(previous: Mapping[str, Any] | None, outcome: Outcome, generation: int, now: dt.datetime) -> dict:
    status = "True" if outcome.ready else "False"
    unchanged = previous is not None and previous.get("status") == status
    return {
        "type": "Ready",
        "status": status,
        "reason": outcome.reason,
        "message": outcome.message,
        # Only a change of status moves the transition time (the Kubernetes convention).
        "lastTransitionTime": previous["lastTransitionTime"] if unchanged else timestamp(now),
        "observedGeneration": generation,
    }


def next_status(current: Mapping[str, Any], outcome: Outcome, generation: int, now: dt.datetime) -> dict[str, Any]:
    """The whole status after a pass; equal to `current` when nothing worth reporting changed."""
    conditions = [c for c in current.get("conditions") or [] if c.get("type") != "Ready"]
    previous_ready = next((c for c in current.get("conditions") or [] if c.get("type") == "Ready"), None)
    status: dict[str, Any] = {k: v for k, v in current.items() if k != "conditions"}
    status["observedGeneration"] = generation
    status["conditions"] = [ready_condition(previous_ready, outcome, generation, now), *conditions]
    for field, value in (
        ("keyCount", outcome.key_count),
        ("dataHash", outcome.data_hash),
        ("featureFlagCount", outcome.feature_flag_count),
        ("secretKeyCount", outcome.secret_key_count),
        ("secretDataHash", outcome.secret_data_hash),
        ("lastRefreshRequest", outcome.refresh_request),
        ("sentinelETag", outcome.sentinel_etag),
    ):
        if value is not None:
            status[field] = value
    # A pass that confirms the same data for the same generation is not news: lastSyncTime moves
    # only when the data or the spec changed, so an operator restart writes nothing.
    if outcome.synced and (
        current.get("dataHash") != outcome.data_hash
        or current.get("secretDataHash") != outcome.secret_data_hash
        or current.get("observedGeneration") != generation
        or "lastSyncTime" not in current
    ):
        status["lastSyncTime"] = timestamp(now)
    if outcome.secrets_refreshed:
        status["lastSecretRefreshTime"] = timestamp(now)
    return status


def status_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch turning `current` into `desired`, or None when they are equal."""
    if dict(current) == dict(desired):
        return None
    patch: dict[str, Any] = {k: v for k, v in desired.items() if current.get(k) != v}
    return patch or None
