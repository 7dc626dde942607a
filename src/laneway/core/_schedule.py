"""When a recurring job is due next: every N seconds, or a cron expression.

`Every(seconds)` and `Cron("m h dom mon dow")` (UTC; each field ``*``,
``*/n``, ``a-b``, ``a-b/n``, ``a,b,...``; day of week 0-6 with 0 Sunday,
7 also Sunday; when both day fields are restricted, either may match, as
in cron) answer `next_after(ms)`: the first due time strictly after `ms`.
Pure: times are arguments.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable

from ._errors import ConfigError

__all__ = ["Every", "Cron", "Schedule"]


class Every:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= 366 * 86400:
            raise ConfigError(f"an interval is 0 < seconds <= 366 days, got {seconds!r}")
        self.seconds = float(seconds)

    def next_after(self, ms: int) -> int:
        return ms + int(self.seconds * 1000)

    def __repr__(self) -> str:
        return f"every {self.seconds:g} s"


_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = ("minute", "hour", "day of month", "month", "day of week")


def _field(text: str, low: int, high: int, name: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ConfigError(f"cron {name}: bad step in {part!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        else:
            first, _, last = base.partition("-")
            if not first.isdigit() or (last and not last.isdigit()):
                raise ConfigError(f"cron {name}: {part!r} is not a number, a range or *")
            start, end = int(first), int(last) if last else (high if step_text else int(first))
        if not low <= start <= end <= high:
            raise ConfigError(f"cron {name}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


class Cron:
    __slots__ = ("expr", "minutes", "hours", "days", "months", "weekdays", "_any_day", "_any_weekday")

    def __init__(self, expr: str) -> None:
        fields = expr.split() if isinstance(expr, str) else []
        if len(fields) != 5:
            raise ConfigError(f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), got {expr!r}")
        parsed = [_field(f, lo, hi, name) for f, (lo, hi), name in zip(fields, _RANGES, _NAMES)]
        self.expr = expr
        self.minutes, self.hours, self.days, self.months = parsed[:4]
        self.weekdays = frozenset(d % 7 for d in parsed[4])
        self._any_day, self._any_weekday = fields[2] == "*", fields[4] == "*"

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        weekday = (calendar.weekday(year, month, day) + 1) % 7  # Python: Monday 0; cron: Sunday 0
        if self._any_day and self._any_weekday:
            return True
        if self._any_day:
            return weekday in self.weekdays
        if self._any_weekday:
            return day in self.days
        return day in self.days or weekday in self.weekdays

    def next_after(self, ms: int) -> int:
        t = time.gmtime(ms // 1000 // 60 * 60 + 60)  # the next whole minute
        year, month, day, hour, minute = t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min
        for _ in range(366 * 5):  # days: enough for any valid expression (Feb 29 included)
            if month in self.months and self._day_matches(year, month, day):
                for h in _from(self.hours, hour):
                    for m in _from(self.minutes, minute if h == hour else 0):
                        return calendar.timegm((year, month, day, h, m, 0, 0, 0, 0)) * 1000
            hour = minute = 0
            day += 1
            if day > calendar.monthrange(year, month)[1]:
                day, month = 1, month + 1
                if month > 12:
                    month, year = 1, year + 1
        raise ConfigError(f"cron {self.expr!r} never comes due")

    def __repr__(self) -> str:
        return f"cron {self.expr!r}"


def _from(values: Iterable[int], start: int) -> list[int]:
    return sorted(v for v in values if v >= start)


Schedule = Every | Cron
