"""What the UI's catalog shows of a warehouse table: its name and column schema, from the
SQLAlchemy table itself, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any

import dagster as dg
import sqlalchemy as sa

WAREHOUSE_SCHEMA = "kidsfin"


def table_schema(table: sa.Table) -> dg.TableSchema:
    columns = [
        dg.TableColumn(
            name=column.name,
            type=str(column.type.compile(dialect=sa.dialects.postgresql.dialect())),
            constraints=dg.TableColumnConstraints(nullable=bool(column.nullable)),
        )
        for column in table.columns
    ]
    key = [c.name for c in table.primary_key.columns]
    constraints = dg.TableConstraints(other=[f"primary key ({', '.join(key)})"]) if key else None
    return dg.TableSchema(columns=columns, constraints=constraints)


def table_metadata(table: sa.Table) -> dict[str, Any]:
    """`dagster/table_name` and `dagster/column_schema` of the table an asset writes."""
    return {
        "dagster/table_name": f"{WAREHOUSE_SCHEMA}.{table.name}",
        "dagster/column_schema": table_schema(table),
    }
