"""Failed logins lock the login for longer and longer (``ui.login_throttle``): on a fake clock, in
milliseconds; the app over HTTP is in ``test_public_app.py``."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from playground.ui.login_throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_few_mistakes_cost_nothing_then_each_one_locks_longer() -> None:
    clock = Clock()
    throttle = LoginThrottle({"owner": "s3cret"}, free_failures=3, clock=clock)
    assert throttle("owner", "s3cret")
    assert [throttle("owner", f"guess{i}") for i in range(3)] == [False] * 3
    assert throttle.locked_for() == 0  # three free mistakes
    assert not throttle("owner", "guess3")  # the fourth locks for 1 s
    for lockout in (1, 2, 4, 8):
        with pytest.raises(HTTPException) as locked:
            throttle("owner", "s3cret")  # locked: even the right password waits
        assert locked.value.status_code == 429 and f"try again in {lockout} s" in locked.value.detail
        clock.now += lockout
        assert not throttle("mallory", "guess")  # unknown users count as failures too
    clock.now += 16
    assert throttle("owner", "s3cret")  # the owner gets in once the lock has passed


def test_the_lockout_is_capped_and_old_failures_are_forgotten() -> None:
    clock = Clock()
    throttle = LoginThrottle({"owner": "pw"}, free_failures=1, window_s=600, max_lockout_s=60, clock=clock)
    for _ in range(12):
        throttle("owner", "wrong")
        clock.now += throttle.locked_for()
    throttle("owner", "wrong")
    assert throttle.locked_for() == 60  # never more than a minute for the owner to wait
    clock.now += 3600  # an hour later the window holds no failure: the next mistake is free again
    assert not throttle("owner", "wrong") and throttle.locked_for() == 0


def test_guesses_per_hour_are_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle({"owner": "pw"}, clock=clock)
    tries = 0
    while clock.now < 1000 + 3600:
        wait = throttle.locked_for()
        clock.now += wait or 0.01  # a guesser retrying the moment the lock passes
        try:
            throttle("owner", f"guess{tries}")
            tries += 1
        except HTTPException:
            pass
    print(f"\nguesses heard in an hour: {tries} (gradio's own check heard 200 in 0.22 s)")
    assert tries < 100
