"""Weeks: Monday 00:00 to the next Monday 00:00 in the configured time zone."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

import dagster as dg

from kidsfin_assets.settings import Settings

PARTITION_FORMAT = "%Y-%m-%d"


@dataclass(frozen=True, order=True)
class Week:
    """One local week; `start` is its Monday and its partition key."""

    start: dt.date
    timezone: str

    @classmethod
    def from_key(cls, key: str, timezone: str) -> Week:
        try:
            start = dt.datetime.strptime(key, PARTITION_FORMAT).date()
        except ValueError as exc:
            raise ValueError(f"week key {key!r} is not a YYYY-MM-DD date") from exc
        if start.weekday() != 0:
            raise ValueError(f"week key {key!r} is a {start:%A}, not a Monday")
        return cls(start, timezone)

    @classmethod
    def containing(cls, instant: dt.datetime, timezone: str) -> Week:
        local = instant.astimezone(zoneinfo.ZoneInfo(timezone)).date()
        return cls(local - dt.timedelta(days=local.weekday()), timezone)

    @property
    def key(self) -> str:
        return self.start.strftime(PARTITION_FORMAT)

    @property
    def starts_at(self) -> dt.datetime:
        return _local_midnight(self.start, self.timezone)

    @property
    def ends_at(self) -> dt.datetime:
        # Localised separately, so a DST change inside the week is handled.
        return _local_midnight(self.start + dt.timedelta(days=7), self.timezone)

    def shifted(self, weeks: int) -> Week:
        return Week(self.start + dt.timedelta(weeks=weeks), self.timezone)

    def is_complete(self, now: dt.datetime | None = None) -> bool:
        return self.ends_at <= (now or dt.datetime.now(dt.UTC))


def _local_midnight(day: dt.date, timezone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zoneinfo.ZoneInfo(timezone))


def weekly_partitions(settings: Settings) -> dg.WeeklyPartitionsDefinition:
    """Monday-keyed weeks from weeks.start_date; only complete weeks exist (end_offset=0)."""
    return dg.WeeklyPartitionsDefinition(
        start_date=settings.weeks.start_date.strftime(PARTITION_FORMAT),
        timezone=settings.weeks.timezone,
        day_offset=1,
        fmt=PARTITION_FORMAT,
        end_offset=0,
    )
