"""Where the project is: relative paths in settings and resources are resolved here.

A leaf (no project imports), so that settings, prompt and the OpenAI resource can all use it
without importing each other.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # kidsfin_assets/config/paths.py


def resolve_path(value: str) -> Path:
    """Relative paths in settings are relative to the project root, not the cwd."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def check_folder(value: str) -> str:
    """Not empty (it would write into the project's root)."""
    if not value.strip():
        raise ValueError("is empty (it would write into the project's root)")
    return value
