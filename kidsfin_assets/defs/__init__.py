"""Dagster objects and nothing else: assets (app, raw, silver, gold, exports), checks, jobs,
sensors, resources, loggers, asset keys and the catalog's table metadata. definitions.py
wires them; the work they do is in warehouse/, reports/ and exports/."""
