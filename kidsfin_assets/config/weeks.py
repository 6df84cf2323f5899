"""Weeks: Monday 00:00 to the next Monday 00:00 in the weekly partitions' time zone.

The weekly partitions are part of the definitions Dagster snapshots when the code location
loads, so their first week and time zone are fixed then, for every run: they are declared
here, once, and come from the environment only (`KIDSFIN_WEEKS__START_DATE`, which `make
demo` and `make dev` set, and `KIDSFIN_WEEKS__TIMEZONE`), never from a config file or a
run's config. Every week's window is cut in this zone (the `analysis` resource's
`timezone` is it), so a week's key and its window always agree.
"""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

from kidsfin_assets.config.errors import SettingsError

PARTITION_FORMAT = "%Y-%m-%d"
# The variables of the `weeks` section (KIDSFIN_<SECTION>__<FIELD>, as every setting's).
_SECTION = "weeks"
START_DATE_ENV = f"KIDSFIN_{_SECTION.upper()}__START_DATE"
TIMEZONE_ENV = f"KIDSFIN_{_SECTION.upper()}__TIMEZONE"
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


@dataclass(frozen=True)
class WeeklyPartitions:
    """The first week (a Monday) and the time zone of the weekly partitions."""

    start_date: dt.date = DEFAULT_START_DATE
    timezone: str = DEFAULT_TIMEZONE

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> WeeklyPartitions:
        """The environment's values, else the defaults; a bad value raises SettingsError
        naming its variable."""
        return cls(
            start_date=_monday(environ.get(START_DATE_ENV) or DEFAULT_START_DATE),
            timezone=_known_zone(environ.get(TIMEZONE_ENV) or DEFAULT_TIMEZONE),
        )

    def definition(self) -> dg.WeeklyPartitionsDefinition:
        return partitions_for(self.start_date, self.timezone)


def _monday(value: str | dt.date) -> dt.date:
    try:
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"{START_DATE_ENV}: {value!r} is not a YYYY-MM-DD date") from None
    if day.weekday() != 0:
        raise SettingsError(
            f"{START_DATE_ENV}: {day} is a {day:%A}; the weekly partitions start on a Monday"
        )
    return day


def _known_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{TIMEZONE_ENV}: unknown time zone {value!r}") from None
    return value


def partitions_for(start: dt.date, timezone: str) -> dg.WeeklyPartitionsDefinition:
    """Monday-keyed weeks from `start`; only complete weeks exist (end_offset=0)."""
    return dg.WeeklyPartitionsDefinition(
        start_date=start.strftime(PARTITION_FORMAT),
        timezone=timezone,
        day_offset=1,
        fmt=PARTITION_FORMAT,
        end_offset=0,
    )


def _at_import() -> WeeklyPartitions:
    """Read when the module is imported (reading two variables is no side effect). A bad
    value cannot stop an import: it falls back to the defaults here, and check_weeks(),
    called when the definitions load, refuses it naming the variable."""
    try:
        return WeeklyPartitions.from_environment(os.environ)
    except SettingsError:
        return WeeklyPartitions()


WEEKS = _at_import()
weekly_partitions = WEEKS.definition()


def check_weeks(environ: Mapping[str, str]) -> None:
    """When the definitions load: refuse a bad KIDSFIN_WEEKS__* value (which the import
    set aside), or one set after this process imported the partitions, naming it."""
    wanted = WeeklyPartitions.from_environment(environ)
    for env, value, fixed in (
        (START_DATE_ENV, wanted.start_date, WEEKS.start_date),
        (TIMEZONE_ENV, wanted.timezone, WEEKS.timezone),
    ):
        if value != fixed:
            raise SettingsError(
                f"{env}: {value} differs from the weekly partitions' {fixed}, fixed when "
                "this process imported them; set it before the process starts"
            )
