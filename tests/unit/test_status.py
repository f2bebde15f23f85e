"""Status is derived from the outcome of a pass and written only when it changes."""

from __future__ import annotations

import datetime as dt

from appconfig_sync.status import Outcome, next_status, status_patch

T0 = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)
T1 = T0 + dt.timedelta(minutes=5)
SYNCED = Outcome(ready=True, reason="Synced", message="2 keys", key_count=2, data_hash="abc", synced=True)


def test_first_sync_sets_ready_and_last_sync_time() -> None:
    status = next_status({}, SYNCED, generation=1, now=T0)
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"], ready["observedGeneration"]) == ("Ready", "True", "Synced", 1)
    assert status["lastSyncTime"] == ready["lastTransitionTime"] == "2026-12-04T12:00:00Z"
    assert (status["keyCount"], status["dataHash"], status["observedGeneration"]) == (2, "abc", 1)


def test_the_same_data_again_is_no_change_so_a_restart_writes_nothing() -> None:
    status = next_status({}, SYNCED, 1, T0)
    assert status_patch(status, next_status(status, SYNCED, 1, T1)) is None


def test_new_data_moves_last_sync_time_but_not_the_transition() -> None:
    status = next_status({}, SYNCED, 1, T0)
    changed = Outcome(ready=True, reason="Synced", message="3 keys", key_count=3, data_hash="def", synced=True)
    after = next_status(status, changed, 1, T1)
    assert after["lastSyncTime"] == "2026-12-04T12:05:00Z"
    assert after["conditions"][0]["lastTransitionTime"] == "2026-12-04T12:00:00Z"
    assert status_patch(status, after) == {k: after[k] for k in ("conditions", "keyCount", "dataHash", "lastSyncTime")}


def test_failure_keeps_the_last_good_figures_and_transitions() -> None:
    status = next_status({}, SYNCED, 1, T0)
    failed = next_status(status, Outcome(ready=False, reason="StoreUnavailable", message="HTTP 503"), 1, T1)
    ready = failed["conditions"][0]
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == ("False", "StoreUnavailable", "2026-12-04T12:05:00Z")
    assert (failed["keyCount"], failed["dataHash"], failed["lastSyncTime"]) == (2, "abc", "2026-12-04T12:00:00Z")


def test_a_spec_change_is_news_even_with_the_same_data() -> None:
    status = next_status({}, SYNCED, 1, T0)
    after = next_status(status, SYNCED, 2, T1)
    assert after["observedGeneration"] == 2 and after["lastSyncTime"] == "2026-12-04T12:05:00Z"


def test_other_conditions_are_kept() -> None:
    current = {"conditions": [{"type": "Custom", "status": "True", "reason": "X", "message": "", "lastTransitionTime": "t"}]}
    types = [c["type"] for c in next_status(current, SYNCED, 1, T0)["conditions"]]
    assert types == ["Ready", "Custom"]
