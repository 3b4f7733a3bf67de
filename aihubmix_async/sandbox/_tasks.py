"""Tasks of task-style families: submitted, polled through pending states, then kept.

Finished tasks stay queryable (bounded, oldest dropped first) as on a real server, so a client
that timed out and polls again gets the same final answer rather than a 404.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

import attrs

from ..providers import TaskVocabulary
from ._stats import MAX_EVENTS

__all__ = ["TaskStore"]


@attrs.define
class _Task:
    tasks: TaskVocabulary
    polls_left: int
    fate: str  # "ready" | "moderated" | "task_failed" | "never_finish"
    url: str
    final: dict[str, Any] | None = None


class TaskStore:
    """Task records by id, at most ``limit`` of them."""

    def __init__(self, limit: int = MAX_EVENTS) -> None:
        self._tasks: OrderedDict[str, _Task] = OrderedDict()
        self._limit = limit

    def __len__(self) -> int:
        return len(self._tasks)

    def submit(
        self, tasks: TaskVocabulary, pending_polls: int, fate: str | None, url: str
    ) -> dict[str, Any]:
        """Record a task; the submit answer (``output[0].taskId`` and ``polling_url``)."""
        task_id = f"api.us1.{uuid.uuid4().hex}"
        self._tasks[task_id] = _Task(tasks, pending_polls, fate or "ready", url)
        while len(self._tasks) > self._limit:
            self._tasks.popitem(last=False)
        polling = f"https://api.us1.bfl.ai/v1/get_result?id={uuid.uuid4()}"
        return {"output": [{"taskId": task_id, "polling_url": polling}]}

    def poll(self, task_id: str) -> dict[str, Any] | None:
        """The task's state now, in its family's words; None for an unknown id."""
        task = self._tasks.get(task_id)
        if task is None:
            return None
        if task.final is not None:
            return task.final
        words = task.tasks
        if task.fate == "never_finish" or task.polls_left > 0:
            task.polls_left -= 1
            return {"id": task_id, "status": words.pending[0]}
        if task.fate == "moderated":
            task.final = {"id": task_id, "status": words.moderated[0]}
        elif task.fate == "task_failed":
            task.final = {"id": task_id, "status": words.failed[0], "message": "upstream failure"}
        else:
            task.final = {"id": task_id, "status": words.done[0], "result": {"sample": task.url}}
        return task.final
