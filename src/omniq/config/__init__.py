"""Configuration: settings constants, ``OMNIQ_*`` overrides, config files and library logging.

* :mod:`omniq.config.settings`: the defaults, as plain constants (``BASE_DIR``, ``RESULT_TTL``...).
* :mod:`omniq.config.env`: :class:`Settings`, those constants overridden by ``OMNIQ_<NAME>``.
* :mod:`omniq.config.loader`: YAML files and dicts turned into an ``OmniQConfig``.
* :mod:`omniq.config.logging`: the ``omniq.*`` loggers, their levels and credential masking.
"""

from omniq.config.env import Settings, get_settings, load_settings, reload_settings
from omniq.config.loader import load_config, load_yaml
from omniq.config.logging import configure_logging, get_logger, reset_logging

__all__ = [
    "Settings",
    "configure_logging",
    "get_logger",
    "get_settings",
    "load_config",
    "load_settings",
    "load_yaml",
    "reload_settings",
    "reset_logging",
]
