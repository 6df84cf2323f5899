"""How a setting's value reaches the field that declares it.

Every setting is a field of the Dagster resource that uses it (`defs/resources.py`, the
OpenAI resource in `reports/openai_client.py`; the `file` run logger's path in
`defs/loggers.py`): its type, default, rule and description are written there, once, with
`setting()`. This module only carries values to those fields:

- from `config/pipeline.yaml` (or the file `KIDSFIN_CONFIG` names), whose sections are the
  resources' keys (`openai:`, `analysis:` ...) and whose keys are their fields;
- from the environment, over the file: `KIDSFIN_<SECTION>__<FIELD>`, or the variable a
  field names itself (the warehouse's `KIDSFIN_DATABASE_URL`, OpenAI's `OPENAI_API_KEY`);
- per run, from the launchpad: the loaded values are each field's default there
  (`configure_at_launch`, in `defs/resources.py`), so a run overrides one field and keeps
  the others.

A value that breaks its field's rule fails in one line, `<resource>.<field>: <rule>, got
<value>`: when the code location loads (saying where the value came from), or, from the
launchpad, when the run builds its resources, before any step does work
(`InvalidSettings`, a `dagster.Failure`). A name a setting had before (`trends.threshold`,
now `analysis.trend_threshold`) is refused in a file, naming the new one, and still read
from the environment, with a warning naming the new variable.
"""

from __future__ import annotations

import json
import os
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import dagster as dg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from kidsfin_assets.config.errors import SettingsError
from kidsfin_assets.config.paths import PROJECT_ROOT
from kidsfin_assets.config.weeks import START_DATE_ENV, TIMEZONE_ENV

ENV_PREFIX = "KIDSFIN_"
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "pipeline.yaml"

# Settings Dagster fixes when it imports the definitions: the weekly partitions (weeks.py).
# A file naming them is refused, pointing at the variable; no resource holds them.
FIXED_AT_IMPORT = {
    "weeks.start_date": START_DATE_ENV,
    "weeks.timezone": TIMEZONE_ENV,
    "analysis.timezone": TIMEZONE_ENV,
}

# Settings that no longer exist: the one value that still means what it did (accepted,
# with a warning to delete it), and why. Any other value is refused with that advice, in a
# file or the environment, rather than as an unknown name.
_NO_THREADS = (
    "the threaded client was removed; the event loop is the only client (its requests in "
    "flight and the bucket's leases sized from the limits): delete the setting"
)
REMOVED: dict[str, tuple[str, str]] = {
    "openai.concurrency": ("async", _NO_THREADS),
    "openai.client": ("async", _NO_THREADS),
}


def _removed(dotted: str, value: object, where: str) -> str | None:
    """The error for a removed setting's value, or None (its one value: a warning)."""
    kept, why = REMOVED[dotted]
    if str(value).strip().lower() == kept:
        warnings.warn(f"{where}: {why}", RetiredSettingWarning, stacklevel=3)
        return None
    return f"{where}: {value!r}: {why}"


_EXTRA = "kidsfin"  # the key of a field's json_schema_extra that says how it is read


def setting(
    default: Any,
    *,
    description: str,
    env: str | None = None,
    in_file: bool = True,
    secret: bool = False,
    formerly: str | Sequence[str] = (),
    **rules: Any,
) -> Any:
    """A setting: a pydantic field with its default, description and rules (`ge=0`...),
    read from the file section of its resource and from `KIDSFIN_<SECTION>__<FIELD>`.

    `env` names another variable; `in_file=False` reads it from the environment only (a
    password must not sit in a file); `secret` hands it to Dagster as an `EnvVar`, so the
    UI shows the variable's name, never the value; `formerly` lists the names it had
    (`section.key`, or a top-level `key`), refused in a file and read, with a warning, from
    the environment."""
    retired = (formerly,) if isinstance(formerly, str) else tuple(formerly)
    how = {"env": env, "in_file": in_file, "secret": secret, "formerly": list(retired)}
    return Field(default, description=description, json_schema_extra={_EXTRA: how}, **rules)


def one_of(*choices: str) -> Callable[[Any, str], str]:
    """A validator: the value is one of `choices` (a str field, not a Literal, so that a
    launchpad value is refused in the same one line as a file's, not as a config type)."""
    said = ", ".join(map(repr, choices[:-1])) + f" or {choices[-1]!r}"

    def check(cls: Any, value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be {said}")
        return value

    check.__doc__ = f"{said}"
    return classmethod(check)  # type: ignore[return-value]


class Rule(ValueError):
    """A rule broken by `field`, raised by a validator that sees several fields (a model
    validator, whose error pydantic would otherwise name no field for)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidSettings(dg.Failure):
    """Values that break their fields' rules, one line each. From a run's config, the run
    fails with it when Dagster builds the resource, before a step does any work; at load,
    `load_sections` reports the same lines with where each value came from."""

    def __init__(self, section: type[Any], error: ValidationError) -> None:
        self.section, self.error = section, error
        super().__init__(description="\n".join(problems(section, error)), allow_retries=False)


class _Checked:
    """What a settings section does: its key, the one-line errors, a redacted value."""

    key: ClassVar[str]  # the resource key, which is also the file's section

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)  # type: ignore[call-arg]
        except ValidationError as exc:
            raise InvalidSettings(type(self), exc) from None

    @classmethod
    def shown(cls, field: str, value: Any) -> str:
        """How an error shows a value (a section holding a password redacts it)."""
        return repr(value)


class SettingsResource(_Checked, dg.ConfigurableResource):
    """A Dagster resource whose fields are settings (declared with `setting()`)."""

    # No infinities or NaN: `timeout_seconds: .inf` would pass `gt=0` and never time out.
    model_config = ConfigDict(allow_inf_nan=False)

    def launchpad_values(self) -> dict[str, Any]:
        """The values the file and the environment set, as the launchpad's defaults: a
        secret as the `EnvVar` it came from (the UI shows the variable's name, and the run
        reads its value), while that variable holds it."""
        out = {}
        for name in sorted(self.model_fields_set):
            how = _how(type(self).model_fields[name])
            if how is None:
                continue
            value = getattr(self, name)
            from_env = how["secret"] and value and os.environ.get(how["env"]) == value
            out[name] = dg.EnvVar(how["env"]) if from_env else value
        return out


class SettingsModel(_Checked, BaseModel):
    """Settings that no resource holds (the `file` run logger's path): read alike."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SourceTables(Protocol):
    """The app's table names as the warehouse code reads them (the `sources` resource,
    `defs/resources.py`, declares them and is one)."""

    @property
    def kids(self) -> str: ...
    @property
    def transactions(self) -> str: ...
    @property
    def app_events(self) -> str: ...
    @property
    def savings_goals(self) -> str: ...


# --- errors -------------------------------------------------------------------------------


def problems(
    section: type[Any], error: ValidationError, origin: Mapping[str, str] | None = None
) -> list[str]:
    """`<key>.<field>: <rule>, got <value>` for each error, with where the value came from
    (`origin`: field -> a variable or a file) when known."""
    lines = []
    for item in error.errors():
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, Rule):
            field, rule, given = cause.field, str(cause), None  # its message shows the values
        else:
            field = ".".join(str(p) for p in item["loc"] if not isinstance(p, int)) or "(all)"
            rule, given = item["msg"].removeprefix("Value error, "), item.get("input")
        field = field.split(".", 1)[0]
        value = None if given is None or isinstance(given, dict) else section.shown(field, given)
        shown = "" if value is None or value in rule else f", got {value}"
        where = (origin or {}).get(field)
        lines.append(f"{section.key}.{field}: {rule}{shown}" + (f" ({where})" if where else ""))
    return lines


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    section: str
    name: str
    env: str
    in_file: bool
    secret: bool
    formerly: tuple[str, ...]
    is_list: bool


def _how(info: FieldInfo) -> dict[str, Any] | None:
    extra = info.json_schema_extra
    return extra.get(_EXTRA) if isinstance(extra, dict) else None  # type: ignore[return-value]


def _fields(sections: Iterable[type[Any]]) -> list[_Field]:
    found = []
    for section in sections:
        for name, info in section.model_fields.items():
            how = _how(info)
            if how is None:
                continue  # a field that is no setting (a base class's)
            kind = typing.get_origin(info.annotation) or info.annotation
            found.append(
                _Field(
                    section=section.key,
                    name=name,
                    env=how["env"] or f"{ENV_PREFIX}{section.key}__{name}".upper(),
                    in_file=how["in_file"],
                    secret=how["secret"],
                    formerly=tuple(how["formerly"]),
                    is_list=kind in (list, tuple),
                )
            )
    return found


def _env_of(dotted: str) -> str:
    return ENV_PREFIX + dotted.replace(".", "__").upper()


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    return Path((os.environ if environ is None else environ).get(CONFIG_ENV) or DEFAULT_CONFIG)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SettingsError(f"kidsfin config file not found: {path} (set {CONFIG_ENV})")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise SettingsError(f"{path}: must be a mapping of sections (openai:, analysis: ...)")
    return document


def _flatten(document: dict[str, Any], path: Path, sections: set[str]) -> dict[str, Any]:
    """`section.key` -> value; a top-level key that is no section stays `key`."""
    flat, bad = {}, []
    for top, body in document.items():
        body = {} if body is None and top in sections else body  # every key commented out
        if top in sections and not isinstance(body, dict):
            bad.append(f"{top}: must be a mapping of its settings ({path})")
        elif isinstance(body, dict):
            flat.update({f"{top}.{key}": value for key, value in body.items()})
        else:
            flat[str(top)] = body
    if bad:
        raise SettingsError("\n".join(bad))
    return flat


def _parse_env(field: _Field, name: str, raw: str) -> Any:
    if not field.is_list:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        raise SettingsError(
            f"{field.section}.{field.name}: not JSON in {name} (a list is written "
            '["ăn vặt", "snacks"])'
        ) from None


def _names_a_setting(name: str, sections: set[str]) -> bool:
    """A KIDSFIN_ variable that looks meant for a setting: `KIDSFIN_<X>__<Y>`, or one
    starting with a section's name (`KIDSFIN_OPENAI_MODEL`). Others (a tool's own
    variables) are not this module's business."""
    rest = name[len(ENV_PREFIX) :].lower()
    return "__" in rest or any(rest.startswith(f"{section}_") for section in sections)


def read_sections(
    sections: Sequence[type[Any]], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """Each section's values from the file, then the environment; and where each came from
    (a variable's name, or the file). Raises SettingsError listing every misplaced name."""
    environ = os.environ if environ is None else environ
    path = config_path(environ)
    fields = _fields(sections)
    by_key = {f"{f.section}.{f.name}": f for f in fields}
    retired = {old: f for f in fields for old in f.formerly}
    keys = {section.key for section in sections}
    values: dict[str, dict[str, Any]] = {key: {} for key in keys}
    origin: dict[str, dict[str, str]] = {key: {} for key in keys}
    errors: list[str] = []

    for dotted, value in _flatten(_read_file(path), path, keys).items():
        field = by_key.get(dotted) or retired.get(dotted)
        new = f"{field.section}.{field.name}" if field else None
        if dotted in REMOVED:
            error = _removed(dotted, value, f"{dotted} in {path}")
            errors += [error] if error else []
        elif dotted in FIXED_AT_IMPORT:
            errors.append(
                f"{dotted}: the weekly partitions are fixed when the code location loads; "
                f"set {FIXED_AT_IMPORT[dotted]} in its environment, not in {path}"
            )
        elif field is None:
            known = ", ".join(sorted(keys))
            errors.append(f"{dotted}: no such setting in {path} (sections: {known})")
        elif not field.in_file:
            errors.append(
                f"{new}: not allowed in a config file (it holds a secret); set the "
                f"environment variable {field.env}"
            )
        elif dotted != new:
            errors.append(f"{dotted}: renamed {new}; rename it in {path}")
        else:
            values[field.section][field.name] = value
            origin[field.section][field.name] = f"from {path}"

    for dotted, env in FIXED_AT_IMPORT.items():
        if _env_of(dotted) != env and _env_of(dotted) in environ:
            errors.append(
                f"{_env_of(dotted)}: the weekly partitions' time zone and first week are "
                f"fixed when the code location loads, from {env}; set that instead"
            )
    by_env = {f.env: f for f in fields}
    retired_env = {_env_of(old): f for f in fields for old in f.formerly}
    removed_env = {_env_of(dotted): dotted for dotted in REMOVED}
    unknown = []
    for name in sorted(environ):
        field = by_env.get(name)
        removed = removed_env.get(name)
        if removed is not None:
            error = _removed(removed, environ[name], f"{name} ({removed})")
            errors += [error] if error else []
            continue
        if field is None and name in retired_env:
            field = retired_env[name]
            if field.env in environ:
                errors.append(f"{name} and {field.env} are both set: keep only {field.env}")
                continue
            warnings.warn(
                f"{name} is the old name of {field.env} ({field.section}.{field.name}); rename it",
                RetiredSettingWarning,
                stacklevel=2,
            )
        if field is not None:
            raw = environ[name]
            if field.secret and not raw:
                continue  # an empty secret (a .env line left blank) is no value
            try:
                values[field.section][field.name] = _parse_env(field, name, raw)
            except SettingsError as exc:
                errors.append(str(exc))
            origin[field.section][field.name] = f"from environment variable {name}"
        elif (
            name.startswith(ENV_PREFIX)
            and name not in (CONFIG_ENV, START_DATE_ENV, TIMEZONE_ENV)
            and name not in map(_env_of, FIXED_AT_IMPORT)
            and _names_a_setting(name, keys)
        ):
            unknown.append(name)
    if unknown:
        errors.append(
            "unknown kidsfin environment variables (a section and its field are joined by "
            "two underscores, e.g. KIDSFIN_OPENAI__MODEL): " + ", ".join(unknown)
        )
    if errors:
        raise SettingsError("\n".join(errors))
    return values, origin


class RetiredSettingWarning(UserWarning):
    """A setting was read from the environment under a name it no longer has."""


def load_sections(
    sections: Sequence[type[Any]], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Every section built from the file and the environment, its fields' rules checked:
    key -> the resource (or model). Raises SettingsError with one line per bad value."""
    values, origin = read_sections(sections, environ)
    built, errors = {}, []
    for section in sections:
        try:
            built[section.key] = section(**values[section.key])
        except InvalidSettings as exc:
            errors += problems(section, exc.error, origin[section.key])
    if errors:
        raise SettingsError("\n".join(errors))
    return built
