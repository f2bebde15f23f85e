"""How long the operator waits before the next pass of one object."""

from __future__ import annotations

from appconfig_sync.status import Outcome
from appconfig_sync.sync import next_delay

OK = Outcome(ready=True, reason="Synced", message="")
DOWN = Outcome(ready=False, reason="StoreUnavailable", message="")


def test_healthy_and_user_fixable_states_keep_the_interval() -> None:
    assert next_delay(30, OK, 0, None) == 30
    assert next_delay(5, Outcome(ready=False, reason="SecretNotFound", message=""), 4, None) == 5


def test_store_failures_back_off_doubling_up_to_five_minutes() -> None:
    assert [next_delay(2, DOWN, n, None) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert next_delay(2, DOWN, 20, None) == 300
    assert next_delay(600, DOWN, 3, None) == 600, "an interval above the cap is kept"


def test_retry_after_is_honoured() -> None:
    assert next_delay(1, Outcome(ready=False, reason="StoreThrottled", message=""), 1, 12.5) == 12.5
