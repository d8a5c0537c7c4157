"""FastAPI with OmniQ: handlers enqueue, a worker runs the tasks, a handler reads the result.

    uvicorn examples.fastapi_app:app --port 8000             # the web app
    omniq worker --app examples.fastapi_app:oq               # a worker, in another terminal

    curl -X POST 'localhost:8000/count?text=to+be+or+not+to+be'    # {"task_id": "..."}
    curl localhost:8000/tasks/<task_id>                            # {"status": "success", "result": 6}

The backend comes from the OMNIQ_* variables (SQLite in ./.omniq/ by default), so both processes
share it; set OMNIQ_EXAMPLE_WORKER=1 to run the worker inside the web process instead.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException

from omniq import AsyncOmniQ
from omniq.integrations.fastapi import OmniQDep, omniq_lifespan

oq = AsyncOmniQ()


@oq.task(max_retries=2)
async def word_count(text: str) -> int:
    return len(text.split())


app = FastAPI(lifespan=omniq_lifespan(oq, worker=os.environ.get("OMNIQ_EXAMPLE_WORKER") == "1"))


@app.post("/count")
async def count(text: str, omniq: OmniQDep) -> dict[str, str]:
    return {"task_id": await omniq.enqueue(word_count, args=(text,))}


@app.get("/tasks/{task_id}")
async def task_state(task_id: str, omniq: OmniQDep) -> dict[str, Any]:
    task = await omniq.get_task(task_id)
    if task is None:
        raise HTTPException(404, f"no task {task_id!r}")
    done = task.status.value == "success"
    return {
        "status": task.status.value,
        "result": await omniq.get_result(task_id, timeout=0) if done else None,
    }
