"""Every and Cron: when a recurring job is due next (UTC)."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given, settings, strategies as st

from laneway.core import ConfigError, Cron, Every


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1000


def test_every_adds_its_interval() -> None:
    assert Every(6 * 3600).next_after(at(2026, 12, 1)) == at(2026, 12, 1, 6)
    for bad in (0, -1, True, "1", 400 * 86400):
        with pytest.raises(ConfigError):
            Every(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expr", "after", "due"),
    [
        ("*/15 * * * *", at(2026, 12, 1, 12, 7, 30), at(2026, 12, 1, 12, 15)),
        ("*/15 * * * *", at(2026, 12, 1, 12, 15), at(2026, 12, 1, 12, 30)),  # strictly after
        ("0 6 * * *", at(2026, 12, 1, 7), at(2026, 12, 2, 6)),
        ("30 23 31 12 *", at(2026, 12, 31, 23, 31), at(2027, 12, 31, 23, 30)),
        ("0 0 29 2 *", at(2026, 3, 1), at(2028, 2, 29)),
        ("0 9 * * 1-5", at(2026, 12, 5, 10), at(2026, 12, 7, 9)),  # Saturday -> Monday
        ("0 9 * * 0", at(2026, 12, 1), at(2026, 12, 6, 9)),  # Sunday is 0 ...
        ("0 9 * * 7", at(2026, 12, 1), at(2026, 12, 6, 9)),  # ... and 7
        ("0 12 1 * 1", at(2026, 12, 1, 13), at(2026, 12, 7, 12)),  # either day field matches
        ("5,10-12 1 * * *", at(2026, 12, 1, 1, 5), at(2026, 12, 1, 1, 10)),
    ],
)
def test_cron_comes_due_at_the_next_matching_minute(expr: str, after: int, due: int) -> None:
    assert Cron(expr).next_after(after) == due


@pytest.mark.parametrize("bad", ["", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "*/0 * * * *", "a * * * *", "5-1 * * * *"])
def test_a_bad_cron_expression_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="cron"):
        Cron(bad)


@settings(max_examples=200, deadline=None)
@given(st.integers(at(2020, 1, 1), at(2035, 1, 1)), st.sampled_from(["*/7 * * * *", "0 */3 * * *", "15 4 1,15 * *", "0 0 * * 6", "59 23 28-31 2 *"]))
def test_the_next_due_time_is_later_on_a_whole_minute_and_matches(after: int, expr: str) -> None:
    cron = Cron(expr)
    due = cron.next_after(after)
    assert due > after and due % 60_000 == 0
    import time

    t = time.gmtime(due // 1000)
    assert t.tm_min in cron.minutes and t.tm_hour in cron.hours and t.tm_mon in cron.months
    # and nothing in between matched
    probe = (after // 60_000 + 1) * 60_000
    assert probe == due or cron.next_after(probe - 60_000) == due
