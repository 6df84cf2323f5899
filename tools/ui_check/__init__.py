"""The UI check in a real browser: `python -m tools.ui_check` (`make ui-check`)."""
