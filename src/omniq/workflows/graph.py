"""Dependency graphs: cycle detection and :class:`TaskDependencyGraph`, a DAG declared before it
is submitted.

Dependencies are stored on each task (``depends_on``) and resolved by the task queue
(``BaseTaskQueue._settle``); this module only checks a graph's shape, so a mistake is reported
with the cycle it makes before anything is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from omniq.models.task import Task


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle in ``edges`` (node -> the nodes it depends on) as a path that starts and ends on
    the same node, e.g. ``["a", "b", "a"]``; None when the graph is acyclic. Iterative, so deep
    chains do not hit the recursion limit."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(edges, white)
    for root in edges:
        if color[root] != white:
            continue
        stack: list[tuple[str, list[str]]] = [(root, list(edges[root]))]
        path = [root]
        color[root] = grey
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                color[node] = black
                continue
            nxt = todo.pop()
            state = color.get(nxt)
            if state is None:  # outside the graph: already stored, cannot close a cycle
                continue
            if state == grey:
                return [*path[path.index(nxt) :], nxt]
            if state == white:
                color[nxt] = grey
                path.append(nxt)
                stack.append((nxt, list(edges[nxt])))
    return None


class TaskDependencyGraph:
    """A DAG of tasks built before submission::

        graph = TaskDependencyGraph()
        a = graph.add_task(download, args=(url,))
        b = graph.add_task(resize, depends_on=[a], pass_results=True)
        graph.add_task(notify, depends_on=[a, b])
        ids = await oq.submit(graph)

    ``add_task`` takes the options of ``enqueue`` and returns the new task's id. Tasks run when
    all they depend on succeeded; ``pass_results=True`` prepends the results of the dependencies
    to the arguments (one dependency: its result; several: the list of their results, in
    ``depends_on`` order).
    """

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __repr__(self) -> str:
        return f"<TaskDependencyGraph {len(self._tasks)} tasks>"

    @property
    def tasks(self) -> list[Task]:
        """The tasks in an order that puts every task after those it depends on."""
        return [self._tasks[i] for i in self.topological_order()]

    def add_task(
        self,
        func: Callable[..., Any] | str | Task,
        *,
        depends_on: Iterable[str | Task] = (),
        pass_results: bool = False,
        **options: Any,
    ) -> str:
        from omniq.models.task import PassResults
        from omniq.queue.builder import build_task

        task = func if isinstance(func, Task) else build_task(func, **options)
        if isinstance(func, Task) and options:
            raise TypeError(f"options {sorted(options)} cannot be combined with a Task object")
        if task.id in self._tasks:
            raise ValueError(f"task {task.id!r} is already in this graph")
        extra = tuple(d.id if isinstance(d, Task) else d for d in depends_on)
        task.depends_on = tuple(dict.fromkeys((*task.depends_on, *extra)))
        if pass_results:
            task.pass_results = PassResults.ONE if len(task.depends_on) == 1 else PassResults.ALL
        self._tasks[task.id] = task
        return task.id

    def add_dependency(self, task_id: str, depends_on: str) -> None:
        """``task_id`` waits for ``depends_on``; refused when it would close a cycle."""
        task = self._tasks.get(task_id)
        if task is None:
            raise KeyError(f"task {task_id!r} is not in this graph")
        if depends_on in task.depends_on:
            return
        previous = task.depends_on
        task.depends_on = (*previous, depends_on)
        cycle = self.find_cycle()
        if cycle:
            task.depends_on = previous
            raise ValueError(
                f"adding {task_id} -> {depends_on} makes a cycle: {' -> '.join(cycle)}"
            )

    def find_cycle(self) -> list[str] | None:
        return find_cycle({i: t.depends_on for i, t in self._tasks.items()})

    def validate(self) -> None:
        """Raises ``ValueError`` naming the cycle, if there is one."""
        cycle = self.find_cycle()
        if cycle:
            raise ValueError(f"dependency cycle: {' -> '.join(cycle)}")

    def topological_order(self) -> list[str]:
        """Ids with every task after its dependencies (Kahn's algorithm, stable in insertion
        order); raises ``ValueError`` on a cycle."""
        self.validate()
        inside = {i: [d for d in t.depends_on if d in self._tasks] for i, t in self._tasks.items()}
        order: list[str] = []
        done: set[str] = set()
        remaining = list(self._tasks)
        while remaining:
            progress = [i for i in remaining if all(d in done for d in inside[i])]
            order.extend(progress)
            done.update(progress)
            remaining = [i for i in remaining if i not in done]
        return order

    def roots(self) -> list[str]:
        """Tasks that wait for nothing inside the graph."""
        return [
            i for i, t in self._tasks.items() if not any(d in self._tasks for d in t.depends_on)
        ]

    def dependents_of(self, task_id: str) -> list[str]:
        return [i for i, t in self._tasks.items() if task_id in t.depends_on]


__all__ = ["TaskDependencyGraph", "find_cycle"]
