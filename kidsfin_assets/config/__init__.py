"""Configuration every layer reads: how settings reach the resources' fields (settings.py:
config/pipeline.yaml and KIDSFIN_* variables; each setting is declared with its resource),
their error, the project's paths, the categories sent by name, and the weeks (the calendar
and the weekly partitions, fixed at import). Imports no other package of kidsfin_assets."""
