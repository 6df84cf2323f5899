"""Dagster resources, and the settings they hold: each setting is one of their fields.

A field is declared once, with `setting()`: its default, its rule (a pydantic constraint or
validator, beside it) and its description, which the launchpad shows. `Settings` is every
resource as loaded when the code location loads (config/pipeline.yaml, a section per
resource key, then KIDSFIN_<SECTION>__<FIELD> variables; config/settings.py reads them);
`run_resources` hands them to Dagster with those values as each field's launchpad default,
so a run can override one field (`resources: {analysis: {config: {trend_threshold: 0.2}}}`)
and keep the others. A value that breaks a rule fails in one line naming
`<resource>.<field>`, at load or, from the launchpad, before a step does any work.

The OpenAI resource is in reports/openai_client.py; the `file` run logger's path in
defs/loggers.py. The weekly partitions' first week and time zone are fixed at load, from
the environment, and are no resource's field (config/weeks.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, get_type_hints

import dagster as dg
from pydantic import field_validator
from sqlalchemy.engine import Engine

from kidsfin_assets.config.categories import DEFAULT_KNOWN_CATEGORIES
from kidsfin_assets.config.paths import PROJECT_ROOT, check_folder, resolve_path
from kidsfin_assets.config.settings import SettingsResource, load_sections, setting
from kidsfin_assets.config.weeks import WEEKS
from kidsfin_assets.defs.loggers import FileLoggerSettings
from kidsfin_assets.exports.export_formats import check_export_format
from kidsfin_assets.exports.export_store import (
    ExportTarget,
    check_export_location,
    export_target,
    redact_location,
)
from kidsfin_assets.reports.openai_client import OpenAIReportsResource
from kidsfin_assets.warehouse import db
from kidsfin_assets.warehouse.tables import Sources, create_warehouse_tables, source_tables

# Engines whose tables were checked in this process (create_all once, not per step).
_READY: set[Engine] = set()

DATABASE_URL_ENV = "KIDSFIN_DATABASE_URL"
DEMO_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'data' / 'kidsfin.db'}"


def _plain_name(name: str) -> bool:
    """Letters, digits and _ only (never empty): safe to quote in SQL written here."""
    return name.replace("_", "").isalnum()


class WarehouseResource(SettingsResource):
    """The database holding the app's source tables and the project's `kidsfin` tables."""

    key: ClassVar[str] = "warehouse"

    database_url: str = setting(
        DEMO_DATABASE_URL,
        env=DATABASE_URL_ENV,
        in_file=False,
        secret=True,
        formerly="database_url",
        description=(
            "SQLAlchemy URL of the app's tables and the warehouse (postgresql:// means "
            "psycopg2); from KIDSFIN_DATABASE_URL only, never a file (it holds a password). "
            "Default: the demo's SQLite file under data/."
        ),
    )
    schema_name: str = setting(
        "kidsfin",
        formerly="warehouse.schema",
        description="PostgreSQL schema of the project's own tables.",
    )
    outage_wait_seconds: float = setting(
        120.0,
        ge=0,
        le=86400,
        description=(
            "Gold waits this long for an unreachable warehouse (sending nothing new, "
            "keeping what it holds), then fails."
        ),
    )
    claim_lease_seconds: float = setting(
        300.0,
        ge=5,
        le=3600,
        description=(
            "A claim on a kid-week lasts this long unless its run renews it (it does "
            "while alive): a dead run's claims free up after it. Keep it above "
            "outage_wait_seconds + openai.timeout_seconds."
        ),
    )
    spool_dir: str = setting(
        "data/spool",
        description="Paid answers the warehouse could not take; the next gold run stores them.",
    )

    @field_validator("database_url")
    @classmethod
    def _usable_url(cls, value: str) -> str:
        """A SQLite or PostgreSQL (psycopg2) URL."""
        # Checked when loaded, so a wrong URL stops start-up instead of failing every run.
        if not isinstance(value, dg.EnvVar):  # an EnvVar is checked once Dagster reads it
            try:
                db.normalize_url(value)
            except db.DatabaseUrlError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("schema_name")
    @classmethod
    def _schema_identifier(cls, value: str) -> str:
        """Letters, digits and _ (at most 63)."""
        # Quoted in SQL the project writes itself (LOCK TABLE "<schema>".…): a plain name.
        if not _plain_name(value) or len(value) > 63:
            raise ValueError(f"{value!r} is not a schema name (letters, digits, _)")
        return value

    _spool_dir_named = field_validator("spool_dir")(check_folder)

    @classmethod
    def shown(cls, field: str, value: Any) -> str:
        return repr(db.redact(value)) if field == "database_url" else repr(value)

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


class SourcesResource(SettingsResource):
    """The app's tables (read only) by name; `schema.table` works."""

    key: ClassVar[str] = "sources"

    kids: str = setting("kids", description="The app's kids table.")
    transactions: str = setting("transactions", description="The app's transactions table.")
    app_events: str = setting("app_events", description="The app's app_events table.")
    savings_goals: str = setting("savings_goals", description="The app's savings_goals table.")

    @field_validator("*")
    @classmethod
    def _identifier(cls, value: str) -> str:
        """A table or schema.table: letters, digits and _."""
        parts = value.split(".")
        if not 1 <= len(parts) <= 2 or not all(map(_plain_name, parts)):
            raise ValueError(f"{value!r} is not a table name (letters, digits, _; schema.table)")
        return value

    def names(self) -> SourcesResource:
        """The table names (config/settings.py's `SourceTables`: this resource is one)."""
        return self

    def tables(self) -> Sources:
        return source_tables(self)


class AnalysisResource(SettingsResource):
    """How metrics are compared. Weeks are cut in the weekly partitions' time zone
    (`timezone`), fixed when the code location loads (KIDSFIN_WEEKS__TIMEZONE): no run can
    cut a week's window in another zone than its key's."""

    key: ClassVar[str] = "analysis"

    trend_threshold: float = setting(
        0.10,
        ge=0,
        le=10,
        formerly="trends.threshold",
        description="|change vs mean(W-1, W-2)| above this share is up or down.",
    )
    max_shrink_share: float = setting(
        0.5,
        ge=0,
        le=1,
        formerly="silver.max_shrink_share",
        description=(
            "A silver week losing more than this share of its kid rows at once fails "
            "before writing (run config allow_shrink accepts a real drop)."
        ),
    )

    @property
    def timezone(self) -> str:
        """The weekly partitions' time zone (config/weeks.py), not a run's to change."""
        return WEEKS.timezone


class PrivacyResource(SettingsResource):
    """What may reach the API."""

    key: ClassVar[str] = "privacy"

    pseudonymize: bool = setting(
        True, description="No nickname or kid id reaches the API ([[KID]] stands in)."
    )
    known_categories: list[str] = setting(
        list(DEFAULT_KNOWN_CATEGORIES),
        description=(
            "Spending categories sent to the API by name (case and surrounding spaces "
            "ignored); any other, which a child may have typed, is sent as 'khác'."
        ),
    )

    @field_validator("known_categories")
    @classmethod
    def _named(cls, value: list[str]) -> list[str]:
        """No empty name."""
        if any(not name.strip() for name in value):
            raise ValueError("a known category is empty")
        return value


class ExportResource(SettingsResource):
    """Where the weekly export files go, and in which format."""

    key: ClassVar[str] = "exports"

    export_dir: str = setting(
        "data/exports",
        formerly="export_dir",
        description=(
            "A folder (relative to the project) or a URL: s3://bucket/prefix, gs://..., "
            "az://...; credentials from the environment, never in the URL."
        ),
    )
    format: str = setting(
        "json",
        formerly="export_format",
        description="json: one document a week (AI Production Pipeline's); jsonl: a kid a line.",
    )

    _export_dir_named = field_validator("export_dir")(check_export_location)

    @field_validator("format")
    @classmethod
    def _format_is_known(cls, value: str) -> str:
        """'json' or 'jsonl'."""
        return check_export_format(value)

    @classmethod
    def shown(cls, field: str, value: Any) -> str:
        if field == "export_dir" and isinstance(value, str):
            return repr(redact_location(value))
        return repr(value)

    def target(self) -> ExportTarget:
        return export_target(self.export_dir)


class StepRetryResource(SettingsResource):
    """Dagster re-runs a failed gold step (never for fatal errors) this often."""

    key: ClassVar[str] = "step_retry"

    max_retries: int = setting(
        2,
        ge=0,
        le=10,
        formerly="retry.step_max_retries",
        description="Step retries after a failure (not for fatal errors).",
    )
    delay_seconds: float = setting(
        30.0,
        ge=0,
        le=3600,
        formerly="retry.step_delay_seconds",
        description="The first retry's wait; it doubles, with jitter.",
    )


class CheckLimitsResource(SettingsResource):
    """Thresholds of the warning checks."""

    key: ClassVar[str] = "check_limits"

    max_quarantine_share: float = setting(
        0.05,
        ge=0,
        le=1,
        formerly="checks.max_quarantine_share",
        description="Warn when a larger share of a week's source rows is invalid.",
    )
    max_cost_per_report_usd: float = setting(
        0.01,
        ge=0,
        formerly="checks.max_cost_per_report_usd",
        description="Warn when a week's reports cost more than this on average.",
    )
    min_grounded_share: float = setting(
        0.99,
        ge=0,
        le=1,
        formerly="checks.min_grounded_share",
        description="Warn when fewer of a week's reports have every claim backed by the data.",
    )


class SensorResource(SettingsResource):
    """The sensors' settings. Sensors take no run config, so these are fixed at load:
    the intervals, by the sensor definitions built with them, and the limits, read by
    every tick."""

    key: ClassVar[str] = "sensor"

    interval_seconds: int = setting(
        300, ge=5, description="How often new_week_sensor polls the source tables."
    )
    late_data_weeks: int = setting(
        8,
        ge=0,
        le=52,
        description="Recent processed weeks re-checked for late rows each tick (0: never).",
    )
    batch_interval_seconds: int = setting(
        300, ge=30, description="How often openai_batch_sensor looks at open batches."
    )
    max_weeks_per_tick: int = setting(
        12,
        ge=1,
        le=520,
        description="Never-processed weeks requested per tick at most; the rest next tick.",
    )


@dataclass(frozen=True)
class Settings:
    """Every resource's settings, as loaded: a field per resource key (and file section)."""

    warehouse: WarehouseResource
    sources: SourcesResource
    analysis: AnalysisResource
    privacy: PrivacyResource
    exports: ExportResource
    step_retry: StepRetryResource
    check_limits: CheckLimitsResource
    sensor: SensorResource
    openai: OpenAIReportsResource
    file_logger: FileLoggerSettings


# Each field's class holds its section (its `key` is the field's name: test_settings.py).
SECTIONS: tuple[type[Any], ...] = tuple(get_type_hints(Settings).values())


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """The settings from the file and the environment (`environ`, else this process's);
    raises SettingsError with one line per bad value, naming where it came from."""
    return Settings(**load_sections(SECTIONS, environ))


def run_resources(settings: Settings) -> dict[str, Any]:
    """The resources Dagster gets: each configured at launch, the loaded values being its
    fields' defaults in the launchpad (secrets as the variables they came from)."""
    return {
        f.name: type(resource).configure_at_launch(**resource.launchpad_values())
        for f in fields(Settings)
        if isinstance(resource := getattr(settings, f.name), SettingsResource)
    }
