"""Pipeline settings: config/pipeline.yaml, overridden by KIDSFIN_* environment variables.

Validated by pydantic when loaded, so a bad value stops start-up with a message that
names the key (and the environment variable, when that is where the value came from).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import zoneinfo
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from pydantic_settings import SettingsError as EnvParseError

from kidsfin_assets.config.categories import DEFAULT_KNOWN_CATEGORIES
from kidsfin_assets.config.errors import SettingsError
from kidsfin_assets.config.paths import PROJECT_ROOT, check_folder, resolve_path
from kidsfin_assets.exports.export_store import check_export_location, is_url, redact_location
from kidsfin_assets.llm.pricing import check_tier_prices, load_price
from kidsfin_assets.warehouse.db import DatabaseUrlError, normalize_url, redact

DEFAULT_CONFIG = PROJECT_ROOT / "config" / "pipeline.yaml"
ENV_PREFIX = "KIDSFIN_"


class _Section(BaseModel):
    # No infinities or NaN: `timeout_seconds: .inf` would pass `gt=0` and never time out.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WeeksSettings(_Section):
    start_date: dt.date
    timezone: str = "Asia/Ho_Chi_Minh"

    @field_validator("start_date")
    @classmethod
    def _monday(cls, value: dt.date) -> dt.date:
        if value.weekday() != 0:
            raise ValueError(f"{value} is a {value:%A}; weeks start on a Monday")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class TrendSettings(_Section):
    threshold: float = Field(ge=0, le=10)


def _plain_name(name: str) -> bool:
    """Letters, digits and _ only (never empty): safe to quote in SQL written here."""
    return name.replace("_", "").isalnum()


class SourceTables(_Section):
    kids: str = "kids"
    transactions: str = "transactions"
    app_events: str = "app_events"
    savings_goals: str = "savings_goals"

    @field_validator("*")
    @classmethod
    def _identifier(cls, value: str) -> str:
        parts = value.split(".")
        if not 1 <= len(parts) <= 2 or not all(map(_plain_name, parts)):
            raise ValueError(f"{value!r} is not a table name (letters, digits, _; schema.table)")
        return value


class WarehouseSettings(_Section):
    schema_name: str = Field(default="kidsfin", alias="schema")
    # How long a gold run waits for an unreachable warehouse (sending nothing new, keeping
    # what it holds) before it fails.
    outage_wait_seconds: float = Field(default=120.0, ge=0, le=86400)
    # A claim on a kid-week lasts this long unless its run renews it (it does while alive).
    claim_lease_seconds: float = Field(default=300.0, ge=5, le=3600)
    # Paid answers that could not reach the warehouse; the next gold run stores them.
    spool_dir: str = "data/spool"

    _spool_dir_named = field_validator("spool_dir")(check_folder)

    @field_validator("schema_name")
    @classmethod
    def _schema_identifier(cls, value: str) -> str:
        # Quoted in SQL the project writes itself (LOCK TABLE "<schema>".…): a plain name only.
        if not _plain_name(value) or len(value) > 63:
            raise ValueError(f"{value!r} is not a schema name (letters, digits, _)")
        return value

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class OpenAISettings(_Section):
    model: str = Field(min_length=1)
    pricing_file: str = "config/pricing.yaml"
    max_tokens: int = Field(gt=0, le=16384)
    temperature: float = Field(ge=0, le=2)
    # The shared bucket keeps 1 % (at least one request) as burst: 1 would leave no refill.
    requests_per_minute: int = Field(ge=2)
    tokens_per_minute: int = Field(gt=0)
    # Requests in flight in one step: threads (at most 256), or tasks of one event loop
    # with client "async" (at most 4096: the big tiers need ~1,500 at 2-5 s an answer).
    max_concurrent: int = Field(gt=0, le=4096)
    client: Literal["threads", "async"] = "threads"
    batch_size: int = Field(default=20, gt=0)
    timeout_seconds: float = Field(gt=0)
    fail_fast_after: int = Field(default=5, ge=0, le=1000)
    # sync: one request per report; batch: OpenAI's Batch API (half price, answers within
    # 24 h); auto: batch when a week has at least batch_min_reports reports to write.
    mode: Literal["sync", "batch", "auto"] = "sync"
    batch_min_reports: int = Field(default=1000, ge=1)
    batch_max_requests: int = Field(default=50_000, ge=1, le=50_000)
    batch_max_bytes: int = Field(default=190_000_000, ge=10_000, le=200_000_000)
    # Enqueued-token budget of the model's batch queue, shared by every process.
    batch_queue_tokens: int = Field(default=2_000_000, ge=1)
    # default, or flex (batch prices on the synchronous API, 429 when it has no capacity)
    service_tier: Literal["default", "flex"] = "default"
    flex_fallback: bool = True  # after flex refusals, send at the default tier
    rate_limit_period_seconds: float = Field(default=60.0, gt=0)
    # > 0: the shared bucket is leased in blocks usable this long (llm/bucket.py); the
    # refill then runs over period + 2 x this, a share of the limit given up for speed.
    rate_limit_lease_seconds: float = Field(default=0.0, ge=0, le=5)
    # Progress lines: one every this many reports, or this many seconds, whichever first.
    progress_every_reports: int = Field(default=500, ge=1)
    progress_every_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _threads_are_bounded(self) -> OpenAISettings:
        if self.client == "threads" and self.max_concurrent > 256:
            raise ValueError(
                f"max_concurrent={self.max_concurrent} needs client: async (threads: at most 256)"
            )
        return self


class RetrySettings(_Section):
    # Waits are capped at an hour: a longer one is a typo, and a report would sit that long.
    max_attempts: int = Field(ge=1, le=20)
    initial_wait_seconds: float = Field(ge=0, le=3600)
    max_wait_seconds: float = Field(ge=0, le=3600)
    jitter_seconds: float = Field(ge=0, le=3600)
    step_max_retries: int = Field(default=2, ge=0, le=10)
    step_delay_seconds: float = Field(default=30, ge=0, le=3600)


class SilverSettings(_Section):
    # A week losing more than this share of its kid rows at once fails before gold runs.
    max_shrink_share: float = Field(default=0.5, ge=0, le=1)


class PrivacySettings(_Section):
    pseudonymize: bool = True
    # Category names sent to the API as they are; any other (free text a child may have
    # typed: a name, a phone number) is sent as "khác". Compared without case and
    # surrounding spaces; sent as written here.
    known_categories: tuple[str, ...] = DEFAULT_KNOWN_CATEGORIES

    @field_validator("known_categories")
    @classmethod
    def _named(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name.strip() for name in value):
            raise ValueError("a known category is empty")
        return value


class CheckSettings(_Section):
    max_quarantine_share: float = Field(ge=0, le=1)
    max_cost_per_report_usd: float = Field(ge=0)
    min_grounded_share: float = Field(default=0.99, ge=0, le=1)


class SensorSettings(_Section):
    interval_seconds: int = Field(ge=5)
    # Recent processed weeks re-fingerprinted each tick to notice late rows (0: never).
    late_data_weeks: int = Field(default=8, ge=0, le=52)
    # How often openai_batch_sensor looks at open batches.
    batch_interval_seconds: int = Field(default=300, ge=30)
    # Never-processed weeks requested per tick at most; a backlog continues next tick.
    max_weeks_per_tick: int = Field(default=12, ge=1, le=520)


class Settings(BaseSettings):
    """Every tunable of the pipeline; see config/pipeline.yaml for the meaning of each."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database_url: str = ""
    export_dir: str = "data/exports"
    export_format: Literal["json", "jsonl"] = "json"
    log_file: str = "data/logs/kidsfin.log"
    weeks: WeeksSettings
    trends: TrendSettings
    sources: SourceTables = SourceTables()
    warehouse: WarehouseSettings = WarehouseSettings()
    openai: OpenAISettings
    retry: RetrySettings
    silver: SilverSettings = SilverSettings()
    privacy: PrivacySettings = PrivacySettings()
    checks: CheckSettings
    sensor: SensorSettings

    _export_dir_named = field_validator("export_dir")(check_export_location)

    @field_validator("database_url")
    @classmethod
    def _usable_database(cls, value: str) -> str:
        # Checked at load, so a wrong URL stops start-up instead of failing every run.
        if value:
            try:
                normalize_url(value)
            except DatabaseUrlError as exc:
                raise ValueError(str(exc)) from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML file; no .env file is read (secrets stay in the env).
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=config_path()),
        )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{resolve_path('data/kidsfin.db')}"

    @property
    def export_path(self) -> Path:
        """A local export folder, resolved against the project (see export_location)."""
        return resolve_path(self.export_dir.removeprefix("file://"))

    @property
    def export_location(self) -> str:
        """The export folder: a store's URL as written, or the local folder's path."""
        return self.export_dir.strip() if is_url(self.export_dir) else str(self.export_path)

    @property
    def log_file_path(self) -> Path:
        return resolve_path(self.log_file)

    @property
    def pricing_path(self) -> Path:
        return resolve_path(self.openai.pricing_file)


def config_path() -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_CONFIG)


def _env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not isinstance(p, int))
        key = ".".join(str(p) for p in loc) or "(root)"
        env = _env_name(loc)
        origin = f" (from environment variable {env})" if env in os.environ else ""
        given = error.get("input")
        if key == "database_url" and isinstance(given, str):
            given = redact(given)  # never echo a password
        elif key == "export_dir" and isinstance(given, str):
            given = redact_location(given)
        shown = "" if isinstance(given, dict) or given is None else f", got {given!r}"
        lines.append(f"  {key}: {error['msg']}{shown}{origin}")
    return "invalid kidsfin settings in " + str(config_path()) + ":\n" + "\n".join(lines)


def load_settings() -> Settings:
    """Load and validate; raise SettingsError naming every bad key."""
    path = config_path()
    if not path.is_file():
        raise SettingsError(f"kidsfin config file not found: {path} (set KIDSFIN_CONFIG)")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SettingsError(f"kidsfin config file {path} is not valid YAML: {exc}") from exc
    if isinstance(document, dict) and "database_url" in document:
        # A URL holds a password: from a file it would reach the UI as plain resource config.
        raise SettingsError(
            f"invalid kidsfin settings in {path}:\n  database_url: not allowed in a config "
            f"file (it holds a password); set the environment variable {ENV_PREFIX}DATABASE_URL"
        )
    unknown = _unknown_variables()
    if unknown:
        raise SettingsError(
            "unknown kidsfin environment variables (a section and its key are joined by two "
            "underscores, e.g. KIDSFIN_OPENAI__MODEL): " + ", ".join(unknown)
        )
    try:
        settings = Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except EnvParseError as exc:
        # pydantic-settings names only the section ("privacy"), not the variable.
        named = _unparsed_variables()
        said = f"not JSON in {', '.join(named)}" if named else str(exc)
        raise SettingsError(
            f'invalid kidsfin settings: {said} (a list is written ["ăn vặt", "snacks"])'
        ) from None
    price = load_price(settings.pricing_path, settings.openai.model)  # unpriced: stops here
    check_tier_prices(
        price,
        settings.openai.model,
        settings.pricing_path,
        mode=settings.openai.mode,
        service_tier=settings.openai.service_tier,
    )
    return settings


def _unparsed_variables() -> list[str]:
    """KIDSFIN_ variables whose value must be JSON (a section, a list) but is not."""
    wanted = []
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            wanted.append(_env_name((name,)))
            wanted += [
                _env_name((name, key))
                for key, sub in section.model_fields.items()
                if getattr(sub.annotation, "__origin__", None) in (tuple, list)
            ]
    return [name for name in wanted if name in os.environ and not _is_json(os.environ[name])]


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _unknown_variables() -> list[str]:
    """KIDSFIN_ variables that name no setting (a typo would otherwise be ignored)."""
    known = {f"{ENV_PREFIX}CONFIG"}
    for name, field in Settings.model_fields.items():
        known.add(_env_name((name,)))
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            for key, sub in section.model_fields.items():
                known.add(_env_name((name, key)))
                if sub.alias:
                    known.add(_env_name((name, sub.alias)))
    # KIDSFIN_TEST_* and KIDSFIN_BENCH_* belong to the test suite and the benchmarks.
    tools = (f"{ENV_PREFIX}TEST_", f"{ENV_PREFIX}BENCH_")
    return sorted(
        name
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX) and name not in known and not name.startswith(tools)
    )


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings (tests call get_settings.cache_clear() after changing env)."""
    return load_settings()
