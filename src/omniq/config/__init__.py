"""Configuration: settings constants, ``OMNIQ_*`` overrides, loaders and library logging."""

from omniq.config.env import Settings, get_settings, load_settings, reload_settings

__all__ = ["Settings", "get_settings", "load_settings", "reload_settings"]
