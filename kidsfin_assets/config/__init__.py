"""Configuration every layer reads: settings (config/pipeline.yaml and KIDSFIN_* variables),
their error, the project's paths, the categories sent by name, and the weeks (the calendar
and the weekly partitions, fixed at import). Imports no other package of kidsfin_assets but
the helpers the settings validate with (warehouse.db, exports.export_store, llm.pricing)."""
