"""Weeks: Monday 00:00 to the next Monday 00:00 in the configured time zone."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from dataclasses import dataclass

import dagster as dg

from kidsfin_assets.config.settings import ENV_PREFIX, Settings, SettingsError, WeeksSettings

PARTITION_FORMAT = "%Y-%m-%d"
# The partitions are part of the definitions Dagster snapshots when the code location
# loads, so they are fixed then: from these variables (`make demo` and `make dev` set the
# start date), else these defaults, which config/pipeline.yaml repeats (docs/design.md).
START_DATE_ENV = f"{ENV_PREFIX}WEEKS__START_DATE"
TIMEZONE_ENV = f"{ENV_PREFIX}WEEKS__TIMEZONE"
DEFAULT_START_DATE = dt.date(2026, 1, 5)
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


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


def partitions_for(start: dt.date, timezone: str) -> dg.WeeklyPartitionsDefinition:
    """Monday-keyed weeks from `start`; only complete weeks exist (end_offset=0)."""
    return dg.WeeklyPartitionsDefinition(
        start_date=start.strftime(PARTITION_FORMAT),
        timezone=timezone,
        day_offset=1,
        fmt=PARTITION_FORMAT,
        end_offset=0,
    )


def _weeks_from_environment() -> WeeksSettings:
    """The environment's weeks, or the defaults. Nothing is raised at import: a bad value
    falls back here, and load_settings() refuses it when the definitions load, naming it."""
    try:
        return WeeksSettings(
            start_date=os.environ.get(START_DATE_ENV) or DEFAULT_START_DATE,
            timezone=os.environ.get(TIMEZONE_ENV) or DEFAULT_TIMEZONE,
        )
    except ValueError:
        return WeeksSettings(start_date=DEFAULT_START_DATE, timezone=DEFAULT_TIMEZONE)


_WEEKS = _weeks_from_environment()
weekly_partitions = partitions_for(_WEEKS.start_date, _WEEKS.timezone)


def check_partitions_match(settings: Settings) -> None:
    """The partitions were fixed at import; refuse a config file that says otherwise."""
    for key, env, wanted, fixed in (
        ("start_date", START_DATE_ENV, settings.weeks.start_date, _WEEKS.start_date),
        ("timezone", TIMEZONE_ENV, settings.weeks.timezone, _WEEKS.timezone),
    ):
        if wanted != fixed:
            raise SettingsError(
                f"weeks.{key}: {wanted} differs from the weekly partitions' {fixed}. The "
                "partitions are fixed when the code loads, from the environment variable "
                f"{env}; set it there (or unset both) instead of in the config file."
            )
