"""Workflows: ``chain``, ``group`` and ``chord``, compiled to tasks with ``depends_on``.

Nothing here runs anything: a workflow is a description that :meth:`AsyncOmniQ.submit` turns into
tasks (each with its id fixed up front, so the dependencies are known before anything is stored)
and enqueues in one ``enqueue_many``. Running, waiting and cancelling on failure are the task
queue's ordinary dependency mechanism::

    run = await oq.submit(chain(sig(fetch, url), sig(parse), sig(store)))
    value = await oq.get_result(run.result_id, timeout=30)

    run = await oq.submit(chord([sig(square, i) for i in range(10)], sig(total)))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omniq.models.task import PassResults, Task
from omniq.workflows.graph import TaskDependencyGraph


class Signature:
    """A call not yet enqueued: a function, its arguments and its ``enqueue`` options.

    In a chain, the previous step's result is prepended to ``args`` when the step runs (as
    Celery does); ``immutable=True`` leaves the arguments as given.
    """

    __slots__ = ("args", "func", "immutable", "kwargs", "options")

    def __init__(
        self,
        func: Callable[..., Any] | str,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        immutable: bool = False,
        **options: Any,
    ) -> None:
        if not callable(func) and not isinstance(func, str):
            raise TypeError(f"a signature needs a callable or a task name, got {func!r}")
        for reserved in ("args", "kwargs", "func_args", "depends_on", "pass_results"):
            if reserved in options:
                raise TypeError(f"{reserved!r} is set by the workflow, not as an option")
        self.func = func
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.immutable = immutable
        self.options = options

    def __repr__(self) -> str:
        name = self.func if isinstance(self.func, str) else getattr(self.func, "__name__", "?")
        return f"sig({name}, args={self.args!r}, kwargs={self.kwargs!r})"

    def set(self, **options: Any) -> Signature:
        """A copy with more ``enqueue`` options (``queue_name``, ``priority``, ``max_retries``...)."""
        return Signature(
            self.func,
            self.args,
            self.kwargs,
            immutable=self.immutable,
            **{**self.options, **options},
        )

    def build(self, build_task: Callable[..., Task]) -> Task:
        return build_task(self.func, args=self.args, kwargs=self.kwargs, **self.options)


def sig(func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Signature:
    """``sig(add, 2, 3)``: the call ``add(2, 3)``, to put in a workflow; options with ``.set()``."""
    return Signature(func, args, kwargs)


class Group:
    """Signatures that run in parallel; a group's result is the list of its members' results."""

    def __init__(self, *members: Signature | Iterable[Signature]) -> None:
        flat: list[Signature] = []
        for m in members:
            if isinstance(m, Signature):
                flat.append(m)
            elif isinstance(m, Group | Chain):
                raise TypeError("a group holds signatures; nest workflows with chain() instead")
            else:
                flat.extend(m)
        for m in flat:
            if not isinstance(m, Signature):
                raise TypeError(f"a group holds signatures (sig(...)), got {m!r}")
        if not flat:
            raise ValueError("a group needs at least one signature")
        self.members = flat

    def __repr__(self) -> str:
        return f"group({', '.join(map(repr, self.members))})"


class Chain:
    """Steps that run one after another; each step receives the previous step's result as its
    first argument (a group's result: the list of its members' results)."""

    steps: list[Signature | Group]

    def __init__(self, *steps: Signature | Group | Chain) -> None:
        flat: list[Signature | Group] = []
        for step in steps:
            if isinstance(step, Chain):
                flat.extend(step.steps)
            elif isinstance(step, Signature | Group):
                flat.append(step)
            else:
                raise TypeError(f"a chain step is a sig(...), a group or a chain, got {step!r}")
        if not flat:
            raise ValueError("a chain needs at least one step")
        self.steps = flat

    def __repr__(self) -> str:
        return f"chain({', '.join(map(repr, self.steps))})"


class Chord(Chain):
    """A group, then a callback that receives the list of all the group's results."""

    def __init__(self, header: Group | Iterable[Signature], body: Signature) -> None:
        group_ = header if isinstance(header, Group) else Group(*header)
        if not isinstance(body, Signature):
            raise TypeError(f"a chord's body is a sig(...), got {body!r}")
        super().__init__(group_, body)

    def __repr__(self) -> str:
        return f"chord({self.steps[0]!r}, {self.steps[1]!r})"


def chain(*steps: Signature | Group | Chain) -> Chain:
    return Chain(*steps)


def group(*members: Signature | Iterable[Signature]) -> Group:
    return Group(*members)


def chord(header: Group | Iterable[Signature], body: Signature) -> Chord:
    return Chord(header, body)


Workflow = Chain | Group | Signature | TaskDependencyGraph


@dataclass(frozen=True)
class WorkflowRun:
    """What :meth:`AsyncOmniQ.submit` returns: the ids of the tasks it enqueued.

    ``result_ids`` are the tasks whose results make the workflow's result (the last step: one
    task, or every member of a final group); ``result_id`` is the single one when there is one.
    """

    ids: list[str]
    result_ids: list[str] = field(default_factory=list)

    @property
    def result_id(self) -> str | None:
        return self.result_ids[0] if len(self.result_ids) == 1 else None


def compile_workflow(
    workflow: Workflow, build_task: Callable[..., Task]
) -> tuple[list[Task], list[str]]:
    """The tasks of a workflow, in an order where dependencies come first, and the ids that
    carry its result."""
    if isinstance(workflow, TaskDependencyGraph):
        ordered = workflow.tasks
        depended = {d for t in ordered for d in t.depends_on}
        return ordered, [t.id for t in ordered if t.id not in depended]
    if isinstance(workflow, Signature):
        workflow = Chain(workflow)
    if isinstance(workflow, Group):
        workflow = Chain(workflow)
    tasks: list[Task] = []
    previous: list[str] = []
    previous_is_group = False
    for step in workflow.steps:
        members = step.members if isinstance(step, Group) else [step]
        current: list[str] = []
        for member in members:
            task = member.build(build_task)
            if previous:
                task.depends_on = tuple(dict.fromkeys((*task.depends_on, *previous)))
                if not member.immutable:
                    task.pass_results = PassResults.ALL if previous_is_group else PassResults.ONE
            tasks.append(task)
            current.append(task.id)
        previous, previous_is_group = current, isinstance(step, Group)
    return tasks, previous


__all__ = [
    "Chain",
    "Chord",
    "Group",
    "Signature",
    "Workflow",
    "WorkflowRun",
    "chain",
    "chord",
    "compile_workflow",
    "group",
    "sig",
]
