"""The warehouse: its tables (schema `kidsfin`) and set-based SQL. Engines and dialects (db),
the tables (tables), raw's validity rules (validation), silver's metrics (metrics), what
the sensor asks the source (source_activity), riding out an outage (outage)."""
