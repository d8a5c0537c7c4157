"""Web-framework integrations, each behind its own extra:

- :mod:`omniq.integrations.fastapi` (``omniq-tasks[fastapi]``): ``FastAPI(lifespan=omniq_lifespan(oq))``
  and the ``OmniQDep`` dependency;
- :mod:`omniq.integrations.litestar` (``omniq-tasks[litestar]``): ``Litestar(plugins=[OmniQPlugin(oq)])``
  and an ``omniq`` dependency;
- :mod:`omniq.integrations.django` (``omniq-tasks[django]``): an installed app configured by
  ``settings.OMNIQ``, tasks found in each app's ``tasks.py``, ``manage.py omniq_worker``.

The async frameworks share :func:`omniq.integrations._lifespan.running`: one ``AsyncOmniQ`` per app,
connected when the app starts (on the app's own event loop, which then owns its connections) and
closed when it stops.
"""
