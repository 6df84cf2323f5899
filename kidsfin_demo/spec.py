"""What to generate (DemoSpec), what was generated (DemoSummary), and a chunk of rows."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field

import numpy as np

from kidsfin_assets.config.weeks import DEFAULT_TIMEZONE
from kidsfin_demo.dirty import QUARANTINE_REASON
from kidsfin_demo.times import zone


@dataclass
class DemoSpec:
    """What to generate.

    `end_week` is the Monday of the last of `weeks` consecutive local weeks (default: the
    last complete week in `timezone`). Every kid is active every week, except that with
    10 kids or more one kid starts late (in the 3rd week, or the 2nd of two) so that the
    `new` trend shows up. `txns_per_kid_week` sets the volume (valid rows, on average).
    """

    kids: int = 10
    weeks: int = 6
    end_week: dt.date | None = None
    timezone: str = DEFAULT_TIMEZONE
    seed: int = 42
    dirty: bool = True
    txns_per_kid_week: float = 8.0

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.kids < 1:
            raise ValueError(f"kids must be >= 1, got {self.kids}")
        if self.weeks < 1:
            raise ValueError(f"weeks must be >= 1, got {self.weeks}")
        if self.end_week is not None and self.end_week.weekday() != 0:
            raise ValueError(f"end week {self.end_week} is a {self.end_week:%A}, not a Monday")
        if not 0 < self.txns_per_kid_week <= 1000:
            raise ValueError(
                f"txns_per_kid_week must be in (0, 1000], got {self.txns_per_kid_week}"
            )
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc

    def week_starts(self, now: dt.datetime | None = None) -> list[dt.date]:
        """The generated weeks' Mondays, oldest first."""
        end = self.end_week
        if end is None:
            # The last complete week: the Monday before this week's Monday.
            today = (now or dt.datetime.now(dt.UTC)).astimezone(zone(self.timezone)).date()
            end = today - dt.timedelta(days=today.weekday() + 7)
        return [end - dt.timedelta(weeks=self.weeks - 1 - i) for i in range(self.weeks)]


@dataclass
class DemoSummary:
    kids: int
    weeks: list[dt.date]
    transactions: int
    app_events: int
    savings_goals: int
    # "<transactions|app_events>.<defect>" -> rows; only defects that occur.
    invalid_by_reason: dict[str, int]
    elapsed_seconds: float
    late_starters: list[int] = field(default_factory=list)
    savings_goals_completed: int = 0

    @property
    def invalid_rows(self) -> int:
        return sum(self.invalid_by_reason.values())

    def expected_quarantine(self) -> dict[str, dict[str, int]]:
        """Invalid rows per source table and pipeline quarantine reason."""
        out: dict[str, dict[str, int]] = {"transactions": {}, "app_events": {}}
        for key, n in self.invalid_by_reason.items():
            table, defect = key.split(".", 1)
            reason = QUARANTINE_REASON[defect]
            out[table][reason] = out[table].get(reason, 0) + n
        return out


@dataclass
class Rows:
    """One chunk of rows of one table, as column arrays."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


# The tables `DemoGenerator.tables()` yields rows of: SourceTables' field names.
TABLES = ("kids", "transactions", "app_events", "savings_goals")
