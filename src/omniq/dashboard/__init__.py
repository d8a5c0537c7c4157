"""The OmniQ web dashboard: live pages and a JSON REST API over any OmniQ application.

``create_app(oq)`` builds the Litestar application; ``omniq dashboard`` serves it, and a worker
started with ``OMNIQ_DASHBOARD_ENABLED=1`` serves it beside itself. Needs the ``dashboard`` extra
(``pip install omniq-tasks[dashboard]``); :mod:`omniq.dashboard.queries`, which the command line
uses too, does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from litestar import Litestar


def create_app(oq: Any, **options: Any) -> Litestar:
    """See :func:`omniq.dashboard.app.create_app`."""
    from omniq.dashboard.app import create_app as create

    return create(oq, **options)


__all__ = ["create_app"]
