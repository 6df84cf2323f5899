"""Export files: their formats (export_formats: the JSON document or JSON Lines, written as
they are read) and where they go (export_store: a folder or object storage, whole or
absent)."""
