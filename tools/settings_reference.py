"""docs/settings.md, written from the settings' declarations (the resources' fields).

    .venv/bin/python -m tools.settings_reference          # rewrite docs/settings.md
    .venv/bin/python -m tools.settings_reference --check  # exit 1 if it is stale

test_settings.py fails while the file and the declarations disagree, so the page never
says a default, a rule or a name the code does not have.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from kidsfin_assets.config.paths import PROJECT_ROOT
from kidsfin_assets.config.settings import ENV_PREFIX, FIXED_AT_IMPORT, REMOVED
from kidsfin_assets.config.weeks import DEFAULT_START_DATE, DEFAULT_TIMEZONE
from kidsfin_assets.defs.resources import SECTIONS

TARGET = PROJECT_ROOT / "docs" / "settings.md"

HEADER = f"""# Settings

<!-- Written by `python -m tools.settings_reference` from the declarations; do not edit. -->

Every setting is a field of the Dagster resource that uses it, declared once with its
default, its rule and its description (`setting()` in `kidsfin_assets/defs/resources.py`,
`kidsfin_assets/reports/openai_client.py` and, for the `file` run logger,
`kidsfin_assets/defs/loggers.py`). Its value comes from, each over the one before:

1. its default (below);
2. `config/pipeline.yaml` (or the file `KIDSFIN_CONFIG` names): a section per resource,
   named as its resource key, a key per field;
3. the environment: `KIDSFIN_<SECTION>__<FIELD>`, or the variable the table names;
4. a run's config (the launchpad, `dagster asset materialize --config`,
   `resources: {{analysis: {{config: {{trend_threshold: 0.2}}}}}}`), field by field: the
   fields a run leaves out keep the loaded values, which the launchpad shows as defaults.
   The `sensor` resource and `file_logger` are read when the code location loads only
   (sensors take no run config; the `file` logger's own run config has a `path`).

A value that breaks its rule fails in one line, `<resource>.<field>: <rule>, got <value>`,
saying where it came from: the code location does not load (file, environment), or the
run fails before any step does work (a run's config). Secrets (marked *secret*) come from
the environment only, a file naming them is refused, and the UI shows their variable's
name, never the value.

**Fixed when the code location loads**: the weekly partitions' first week and time zone,
from `KIDSFIN_WEEKS__START_DATE` (default {DEFAULT_START_DATE}, a Monday) and
`KIDSFIN_WEEKS__TIMEZONE` (default `{DEFAULT_TIMEZONE}`) only. Every week's window is cut in
that zone (`analysis.timezone` is it, and no run's config can set it), so a week's key and
its window always agree. A file naming {", ".join(f"`{k}`" for k in FIXED_AT_IMPORT)} is
refused, pointing at the variable.
"""

RENAMED = """
## Renamed settings

Each setting's section is now the resource that holds it, and a few names say what they
are: `openai.api` is which OpenAI API writes the reports (`sync`, a request per report;
`batch`, the Batch API; `auto`), and `openai.progress_group_size` the kids per "Processing
kids i-j of n (group k/m)" log line (it was `batch_size`, beside the Batch API's
`batch_max_requests`). A config file using an old name is refused, in one line naming the
new one; an old variable still sets its setting, with a warning naming the new variable.

In a run's config (the launchpad), the OpenAI resource's `mode` is `api` and `batch_size`
is `progress_group_size`; the `analysis` resource has no
`timezone` any more (the partitions' zone, fixed at load: a run naming it is refused); the
resource `sensor_limits` is `sensor`. A run may override one field of a resource and keep
the others (an override of `exports.format` alone was refused before).

| Before | Now | Variable now |
|---|---|---|
"""

REMOVED_SECTION = """
## Removed settings

Wherever they are set (a file, the environment), the one value that still means what it
did is accepted with a warning to delete it; any other is refused, saying why:

| Setting | Still accepted | Why |
|---|---|---|
"""


def _rule(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for kind, attr, sign in (
            (at.Ge, "ge", "≥"),
            (at.Gt, "gt", ">"),
            (at.Le, "le", "≤"),
            (at.Lt, "lt", "<"),
        ):
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, attr):,}")
        if isinstance(item, at.MinLen):
            parts.append("not empty")
    return ", ".join(parts)


def _validators(section: type[BaseModel]) -> dict[str, list[str]]:
    """Each field's validators, by the first sentence of their docstrings."""
    out: dict[str, list[str]] = {}
    for decorator in section.__pydantic_decorators__.field_validators.values():
        doc = (getattr(decorator.func, "__doc__", None) or "").strip()
        said = doc.split("\n\n")[0].replace("\n", " ").split(". ")[0].rstrip(".")
        for field in decorator.info.fields:
            names = section.model_fields if field == "*" else [field]
            for name in names:
                out.setdefault(name, []).append(said)
    return out


def _shown(value: Any) -> str:
    if isinstance(value, str) and str(PROJECT_ROOT) in value:
        return f"`{value.replace(str(PROJECT_ROOT), '<project>')}`"
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return f"{len(value)} names (`kidsfin_assets/config/categories.py`)"
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    lines = [HEADER, RENAMED]
    for section in SECTIONS:
        for name, info in section.model_fields.items():
            how = (info.json_schema_extra or {}).get("kidsfin")  # type: ignore[union-attr]
            for old in how["formerly"] if how else ():
                variable = how["env"] or f"{ENV_PREFIX}{section.key}__{name}".upper()
                lines.append(f"| `{old}` | `{section.key}.{name}` | `{variable}` |\n")
    lines.append(REMOVED_SECTION)
    for dotted, (kept, why) in REMOVED.items():
        variable = f"{ENV_PREFIX}{dotted.replace('.', '__').upper()}"
        lines.append(f"| `{dotted}` (`{variable}`) | `{kept}` | {why} |\n")
    for section in SECTIONS:
        doc = " ".join((section.__doc__ or "").split())
        kind = "resource" if hasattr(section, "configure_at_launch") else "read at load"
        lines.append(f"\n## `{section.key}` ({kind}: `{section.__name__}`)\n\n{doc}\n\n")
        lines.append("| Setting | Default | Rule | Variable | Description |\n")
        lines.append("|---|---|---|---|---|\n")
        validated = _validators(section)
        for name, info in section.model_fields.items():
            how = (info.json_schema_extra or {}).get("kidsfin")  # type: ignore[union-attr]
            if how is None:
                continue
            rule = "; ".join(filter(None, [_rule(info), *validated.get(name, [])]))
            variable = how["env"] or f"{ENV_PREFIX}{section.key}__{name}".upper()
            if how["secret"]:
                variable += " (*secret*)"
            auto = info.default is None and "auto" in validated.get(name, [""])[0]
            default = "`auto`" if auto else _shown(info.default)
            cells = [f"`{name}`", default, rule, f"`{variable}`"]
            cells.append(info.description or "")
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |\n")
        for decorator in section.__pydantic_decorators__.model_validators.values():
            if decorator.func.__doc__:
                lines.append(f"\nAcross fields: {_cell(decorator.func.__doc__)}\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.settings_reference")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        stale = not TARGET.exists() or TARGET.read_text() != text
        if stale:
            print(f"{TARGET} is stale: run python -m tools.settings_reference", file=sys.stderr)
        return int(stale)
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
