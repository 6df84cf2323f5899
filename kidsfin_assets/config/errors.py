"""The error a bad setting or configuration file raises, apart from the modules that raise
it: settings.py and pricing.py both use it, and neither needs the other to do so."""


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the key."""
