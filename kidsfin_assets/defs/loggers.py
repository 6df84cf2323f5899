"""Run loggers: the console (Dagster's own), JSON lines on the console, and a log file.

AI Production Pipeline, the Go program kidsfin replaces (docs/design.md), logged to the
console and/or a file, in text or JSON. Dagster keeps every run's log in its event log
(the UI shows it); the `file` logger is for whoever also wants it in a file (a log
shipper, `tail -f`), selected per run in run config:

    loggers:
      console: {}
      file: {config: {json: true, log_level: INFO}}   # path: the `file_logger.path` setting

Every step process of a run appends to the same file; each record is one line.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
from pydantic import field_validator

from kidsfin_assets.config.paths import check_folder, resolve_path
from kidsfin_assets.config.settings import SettingsModel, setting

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(caller)s - %(message)s"
_PROJECT_PACKAGE = "kidsfin_assets"


def project_caller() -> str | None:
    """`module:line` of the project code that logged, as AI Production Pipeline's caller info.

    A record's own pathname is inside Dagster's log manager, so the caller is found on the
    stack instead: logging is synchronous, so the logging frame is still on it."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(_PROJECT_PACKAGE) and module != __name__:
            return f"{module}:{frame.f_lineno}"
        frame = frame.f_back
    return None  # a Dagster event, not a line of ours


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record, with the run, step and event that Dagster attached."""

    def format(self, record: logging.LogRecord) -> str:
        meta: dict[str, Any] = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "message": meta.get("orig_message") or record.getMessage(),
            "run_id": meta.get("run_id"),
            "job": meta.get("job_name"),
            "step": meta.get("step_key"),
            "event": getattr(event, "event_type_value", None),
            "caller": getattr(record, "caller", None),
        }
        return json.dumps(line, ensure_ascii=False, default=str)


class AppendingFileHandler(logging.Handler):
    """Opens the file for each record and closes it again: Dagster gives loggers no
    teardown, so a handler that kept the file open would leak one descriptor per run in a
    long-lived process (a code server, in-process runs). One write per record, in append
    mode, also keeps the lines of several step processes whole."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        record.caller = project_caller() or "dagster"
        try:
            line = self.format(record) + "\n"
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
        except Exception:
            self.handleError(record)


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class FileLoggerSettings(SettingsModel):
    """The `file` run logger's default; a run's `loggers: {file: {config: {path: ...}}}`
    overrides it."""

    key: ClassVar[str] = "file_logger"

    path: str = setting(
        "data/logs/kidsfin.log",
        formerly="log_file",
        description="Where the `file` run logger appends (relative to the project).",
    )

    _named = field_validator("path")(check_folder)

    @property
    def resolved(self) -> Path:
        return resolve_path(self.path)


def build_file_logger(default_path: Path) -> dg.LoggerDefinition:
    """The `file` run logger; its path defaults to the `file_logger.path` setting."""

    @dg.logger(
        config_schema={
            "path": dg.Field(str, default_value=str(default_path), description="appended to"),
            # An enum, so a wrong level is a config error in the launchpad and the CLI.
            "log_level": dg.Field(
                dg.Enum("KidsfinLogLevel", [dg.EnumValue(level) for level in LEVELS]),
                default_value="INFO",
            ),
            "json": dg.Field(bool, default_value=False, description="one JSON object a line"),
        },
        description="Appends the run's log to a file, as text or one JSON object per line.",
    )
    def file_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
        config = init_context.logger_config
        path = Path(config["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = AppendingFileHandler(path)
        formatter = JsonLineFormatter() if config["json"] else logging.Formatter(_TEXT_FORMAT)
        handler.setFormatter(formatter)
        # A logger object of its own, not logging.getLogger(): two runs in one process
        # must not share handlers.
        run_logger = logging.Logger("kidsfin", level=config["log_level"])
        run_logger.addHandler(handler)
        return run_logger

    return file_logger


def build_run_loggers(log_file: Path) -> dict[str, dg.LoggerDefinition]:
    """Console by default; `json` and `file` are chosen in a run's config."""
    return {
        "console": dg.colored_console_logger,
        "json": dg.json_console_logger,
        "file": build_file_logger(log_file),
    }
