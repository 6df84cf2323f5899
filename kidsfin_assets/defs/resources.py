"""Dagster resources: the warehouse database and the settings that change a run.

Each resource's defaults come from config/pipeline.yaml and KIDSFIN_* variables
(`resources_from`, called when the code location loads), so the launchpad shows every
knob and a run can override one (`resources: {analysis: {config: {trend_threshold: 0.2}}}`).
The OpenAI resource lives in openai_client.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import dagster as dg
from pydantic import Field, ValidationError
from sqlalchemy.engine import Engine

from kidsfin_assets.config.categories import DEFAULT_KNOWN_CATEGORIES
from kidsfin_assets.config.paths import resolve_path
from kidsfin_assets.config.settings import (
    CheckSettings,
    PrivacySettings,
    RetrySettings,
    SensorSettings,
    SilverSettings,
    SourceTables,
    TrendSettings,
    WarehouseSettings,
    WeeksSettings,
)
from kidsfin_assets.exports.export_formats import check_export_format
from kidsfin_assets.exports.export_store import ExportTarget, check_export_location, export_target
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import Sources, create_warehouse_tables, source_tables

# Engines whose tables were checked in this process (create_all once, not per step).
_READY: set[Engine] = set()


def refuse_invalid(
    resource: str,
    checks: dict[str, Callable[[], object]],
    renamed: Mapping[str, str] | None = None,
) -> None:
    """Check a resource's values as the settings are checked: a bad launchpad override
    fails the run at once, naming `<resource>.<field>`, not deep inside a step. `checks`
    maps a field (empty: named by the error, a settings key `renamed` to the resource's
    field) to building the settings section it is, or to a settings validator."""
    problems = []
    for name, build in checks.items():
        try:
            build()
        except ValidationError as exc:
            for error in exc.errors():
                key = ".".join(str(part) for part in error["loc"])
                field = name or (renamed or {}).get(key, key)
                problems.append(f"{resource}.{field}: {error['msg']}")
        except ValueError as exc:  # a validator called alone (ValidationError is one too)
            problems.append(f"{resource}.{name}: {exc}")
    if problems:
        raise dg.Failure(
            description="invalid resource config: " + "; ".join(problems),
            allow_retries=False,
        )


class WarehouseResource(dg.ConfigurableResource):
    """The database holding the app's source tables and the project's `kidsfin` tables."""

    database_url: str = Field(description="SQLAlchemy URL; postgresql:// means psycopg2.")
    schema_name: str = Field(default="kidsfin", description="PostgreSQL schema of our tables.")
    outage_wait_seconds: float = Field(
        default=120.0, description="Gold waits this long for an unreachable warehouse."
    )
    claim_lease_seconds: float = Field(
        default=300.0, description="A dead run's claims on kid-weeks expire after this."
    )
    spool_dir: str = Field(
        default="data/spool", description="Paid answers the warehouse could not take."
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = {name: getattr(self, name) for name in WarehouseSettings.model_fields}
        refuse_invalid(
            "warehouse",
            {"": lambda: WarehouseSettings(**settings)},  # populate_by_name: schema_name
            renamed={"schema": "schema_name"},  # the error names the alias
        )

    def get_engine(self) -> Engine:
        """A pooled engine, with the warehouse tables created if missing."""
        engine = db.get_engine(self.database_url, self.schema_name)
        if engine not in _READY:
            create_warehouse_tables(engine)
            _READY.add(engine)
        return engine

    @property
    def spool_path(self) -> Path:
        return resolve_path(self.spool_dir)


class SourcesResource(dg.ConfigurableResource):
    """The app's tables (read only) by name; `schema.table` works."""

    kids: str = "kids"
    transactions: str = "transactions"
    app_events: str = "app_events"
    savings_goals: str = "savings_goals"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        refuse_invalid(
            "sources",
            {
                key: lambda k=key: SourceTables(**{k: getattr(self, k)})
                for key in SourceTables.model_fields
            },
        )

    def names(self) -> SourceTables:
        return SourceTables(**self.model_dump())

    def tables(self) -> Sources:
        return source_tables(self.names())


class AnalysisResource(dg.ConfigurableResource):
    """How weeks are cut and metrics compared."""

    timezone: str = Field(
        default="Asia/Ho_Chi_Minh",
        description="Weeks run Monday 00:00 to Monday 00:00 in this zone.",
    )
    trend_threshold: float = Field(
        default=0.10, description="|change vs mean(W-1, W-2)| above this is up or down."
    )
    max_shrink_share: float = Field(
        default=0.5, description="A silver week losing more of its kid rows at once fails."
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        refuse_invalid(
            "analysis",
            {
                "timezone": lambda: WeeksSettings(start_date="2026-01-05", timezone=self.timezone),
                "trend_threshold": lambda: TrendSettings(threshold=self.trend_threshold),
                "max_shrink_share": lambda: SilverSettings(max_shrink_share=self.max_shrink_share),
            },
        )


class PrivacyResource(dg.ConfigurableResource):
    """What may reach the API."""

    pseudonymize: bool = Field(default=True, description="No nickname reaches the API.")
    known_categories: list[str] = Field(
        default=list(DEFAULT_KNOWN_CATEGORIES),
        description="Spending categories sent by name; any other is sent as 'khác'.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        categories = tuple(self.known_categories)
        refuse_invalid(
            "privacy", {"known_categories": lambda: PrivacySettings(known_categories=categories)}
        )


class ExportResource(dg.ConfigurableResource):
    """Where the weekly export files go, and in which format.

    `export_dir` has no default of its own: Dagster fills a field a launchpad override
    leaves out from the class's default, not from the settings, so an override of `format`
    alone would have sent the files to another folder than the configured one (a bucket's
    exports to the project's disk). Without a default, such an override is refused."""

    export_dir: str = Field(
        description=(
            "A folder (relative to the project) or a URL: s3://bucket/prefix, gs://..., "
            "az://...; credentials from the environment, never in the URL."
        ),
    )
    format: str = Field(
        default="json",
        description="json: one document a week (AI Production Pipeline's); jsonl: a kid a line.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        refuse_invalid(
            "exports",
            {
                "export_dir": lambda: check_export_location(self.export_dir),
                "format": lambda: check_export_format(self.format),
            },
        )

    def target(self) -> ExportTarget:
        return export_target(self.export_dir)


class StepRetryResource(dg.ConfigurableResource):
    """Dagster re-runs a failed gold step (never for fatal errors) this often."""

    max_retries: int = Field(default=2, description="Step retries after a failure.")
    delay_seconds: float = Field(default=30.0, description="First wait; doubles, with jitter.")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # The report retries' fields are required by the section; these are placeholders.
        steps = {"step_max_retries": self.max_retries, "step_delay_seconds": self.delay_seconds}
        placeholders = {"max_attempts": 1, "initial_wait_seconds": 0, "max_wait_seconds": 0}
        refuse_invalid(
            "step_retry",
            {"": lambda: RetrySettings(**placeholders, jitter_seconds=0, **steps)},
            renamed={"step_max_retries": "max_retries", "step_delay_seconds": "delay_seconds"},
        )


class CheckLimitsResource(dg.ConfigurableResource):
    """Thresholds of the warning checks."""

    max_quarantine_share: float = 0.05
    max_cost_per_report_usd: float = 0.01
    min_grounded_share: float = 0.99

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        refuse_invalid("check_limits", {"": lambda: CheckSettings(**self.model_dump())})


class SensorLimitsResource(dg.ConfigurableResource):
    """How much new_week_sensor looks at per tick."""

    late_data_weeks: int = Field(default=8, description="Recent weeks re-checked for late rows.")
    max_weeks_per_tick: int = Field(default=12, description="New weeks requested per tick.")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        limits = {
            "late_data_weeks": self.late_data_weeks,
            "max_weeks_per_tick": self.max_weeks_per_tick,
        }
        # interval_seconds is the sensor's own (not a resource field): any valid value.
        refuse_invalid("sensor_limits", {"": lambda: SensorSettings(interval_seconds=30, **limits)})
