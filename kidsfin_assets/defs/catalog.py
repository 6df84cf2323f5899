"""What the UI's catalog shows of a warehouse table: its name and column schema, from the
SQLAlchemy table itself, so the two cannot drift apart.

The asset modules are imported before any setting is read, so their definition metadata
names the tables as the production warehouse has them (PostgreSQL, schema `kidsfin`);
`in_warehouse` rewrites it for the warehouse actually configured when the definitions load
(SQLite's types and unqualified names for the demo, the configured schema on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from kidsfin_assets.warehouse.tables import metadata as warehouse_tables

WAREHOUSE_SCHEMA = "kidsfin"
POSTGRES, SQLITE = "postgres", "sqlite"  # the kinds naming the database (definitions.py)
DIALECTS: dict[str, sa.engine.Dialect] = {
    POSTGRES: postgresql.dialect(),
    SQLITE: sqlite.dialect(),
}
TABLE_NAME = "dagster/table_name"
COLUMN_SCHEMA = "dagster/column_schema"
SCHEMA_PREFIX = "schema/"  # an asset of several tables: `schema/<table>` for each


def table_schema(table: sa.Table, kind: str = POSTGRES) -> dg.TableSchema:
    """The table's columns with their types as `kind`'s database declares them."""
    dialect = DIALECTS[kind]
    columns = [
        dg.TableColumn(
            name=column.name,
            type=str(column.type.compile(dialect=dialect)),
            constraints=dg.TableColumnConstraints(nullable=bool(column.nullable)),
        )
        for column in table.columns
    ]
    key = [c.name for c in table.primary_key.columns]
    constraints = dg.TableConstraints(other=[f"primary key ({', '.join(key)})"]) if key else None
    return dg.TableSchema(columns=columns, constraints=constraints)


def table_name(table: sa.Table, kind: str = POSTGRES, schema: str = WAREHOUSE_SCHEMA) -> str:
    """The name to query the table by: SQLite's warehouse tables have no schema."""
    return table.name if kind == SQLITE else f"{schema}.{table.name}"


def table_metadata(
    table: sa.Table, kind: str = POSTGRES, schema: str = WAREHOUSE_SCHEMA
) -> dict[str, Any]:
    """`dagster/table_name` and `dagster/column_schema` of the table an asset writes."""
    return {
        TABLE_NAME: table_name(table, kind, schema),
        COLUMN_SCHEMA: table_schema(table, kind),
    }


def _table(name: str) -> sa.Table:
    """A warehouse table by its bare name (the name a schema or table name ends with)."""
    (table,) = [t for t in warehouse_tables.tables.values() if t.name == name]
    return table


def in_warehouse(metadata: Mapping[str, Any], kind: str, schema: str) -> dict[str, Any]:
    """An asset's definition metadata with its warehouse tables' names and column schemas
    as the configured warehouse (`kind`, `schema`) has them; other entries unchanged."""
    found = dict(metadata)
    if TABLE_NAME in found:
        name = str(getattr(found[TABLE_NAME], "value", found[TABLE_NAME]))
        found |= table_metadata(_table(name.rpartition(".")[2]), kind, schema)
    for key in metadata:
        if key.startswith(SCHEMA_PREFIX):
            found[key] = table_schema(_table(key.removeprefix(SCHEMA_PREFIX)), kind)
    return found
