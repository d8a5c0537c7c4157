"""The Django app: finds each installed app's ``tasks`` module at start-up (as Celery and
procrastinate do), and drops the project's OmniQ when a test changes ``settings.OMNIQ``."""

from __future__ import annotations

import importlib
from typing import Any

from django.apps import AppConfig, apps
from django.core.signals import setting_changed
from django.utils.module_loading import module_has_submodule

#: the modules of task functions found at start-up: a worker started by ``omniq_worker`` may run
#: any function defined in them (registered with ``@task`` or not)
task_modules: list[str] = []


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    from omniq.integrations.django import SETTING, reset

    if setting == SETTING:
        reset()


class OmniQAppConfig(AppConfig):  # type: ignore[misc]
    name = "omniq.integrations.django"
    label = "omniq"
    verbose_name = "OmniQ"

    def ready(self) -> None:
        setting_changed.connect(_on_setting_changed, dispatch_uid="omniq-setting-changed")
        for config in apps.get_app_configs():
            if config.name == self.name or not module_has_submodule(config.module, "tasks"):
                continue
            module = f"{config.name}.tasks"
            importlib.import_module(module)
            if module not in task_modules:
                task_modules.append(module)
