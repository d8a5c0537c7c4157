"""Dependencies and workflows: graphs, chains, groups and chords, all built on ``depends_on``."""

from omniq.workflows.canvas import (
    Chain,
    Chord,
    Group,
    Signature,
    WorkflowRun,
    chain,
    chord,
    group,
    sig,
)
from omniq.workflows.graph import TaskDependencyGraph, find_cycle

__all__ = [
    "Chain",
    "Chord",
    "Group",
    "Signature",
    "TaskDependencyGraph",
    "WorkflowRun",
    "chain",
    "chord",
    "find_cycle",
    "group",
    "sig",
]
