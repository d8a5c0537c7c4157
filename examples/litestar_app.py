"""Litestar with OmniQ: handlers enqueue, a worker runs the tasks, a handler reads the result.

    uvicorn examples.litestar_app:app --port 8000            # the web app
    omniq worker --app examples.litestar_app:oq              # a worker, in another terminal

    curl -X POST 'localhost:8000/count?text=to+be+or+not+to+be'    # {"task_id": "..."}
    curl localhost:8000/tasks/<task_id>                            # {"status": "success", "result": 6}

The backend comes from the OMNIQ_* variables (SQLite in ./.omniq/ by default), so both processes
share it; set OMNIQ_EXAMPLE_WORKER=1 to run the worker inside the web process instead.
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery

from omniq import AsyncOmniQ
from omniq.integrations.litestar import OmniQDep, OmniQPlugin

oq = AsyncOmniQ()


@oq.task(max_retries=2)
async def word_count(text: str) -> int:
    return len(text.split())


@post("/count", status_code=200)
async def count(text: FromQuery[str], omniq: OmniQDep) -> dict[str, str]:
    return {"task_id": await omniq.enqueue(word_count, args=(text,))}


@get("/tasks/{task_id:str}")
async def task_state(task_id: FromPath[str], omniq: OmniQDep) -> dict[str, Any]:
    task = await omniq.get_task(task_id)
    if task is None:
        raise NotFoundException(f"no task {task_id!r}")
    done = task.status.value == "success"
    return {
        "status": task.status.value,
        "result": await omniq.get_result(task_id, timeout=0) if done else None,
    }


app = Litestar(
    [count, task_state],
    plugins=[OmniQPlugin(oq, worker=os.environ.get("OMNIQ_EXAMPLE_WORKER") == "1")],
)
