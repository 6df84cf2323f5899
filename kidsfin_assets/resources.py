"""Dagster resources: the warehouse database (the OpenAI resource lives in openai_client.py)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from kidsfin_assets import db
from kidsfin_assets.warehouse import create_warehouse_tables

# Engines whose tables were checked in this process (create_all once, not per step).
_READY: set[Engine] = set()


class WarehouseResource(dg.ConfigurableResource):
    """The database holding the app's source tables and the project's `kidsfin` tables."""

    database_url: str = Field(description="SQLAlchemy URL; postgresql:// means psycopg2.")
    schema_name: str = Field(default="kidsfin", description="PostgreSQL schema of our tables.")

    def get_engine(self) -> Engine:
        """A pooled engine, with the warehouse tables created if missing."""
        engine = db.get_engine(self.database_url, self.schema_name)
        if engine not in _READY:
            create_warehouse_tables(engine)
            _READY.add(engine)
        return engine
