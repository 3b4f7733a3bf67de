"""The adapter protocol the client relies on, and :class:`Adapter`, a family stated as data.

A built-in family is an ``Adapter`` subclass that only sets class attributes (its spec):
models and aliases, the route, the parameter class, image parameters and their encoding, the
answer shapes and, for task-style families, the task vocabulary. Hooks are overridden only for
what is really custom. The wire records, parameter helpers and readers live in their own
modules and are re-exported here for compatibility.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from .._errors import InvalidRequestError, ResponseFormatError
from .._models import ModelInfo
from .._types import JSONObject, JSONValue
from ._params import (
    accepts_no_params,
    check_prompt,
    describe_params,
    param,
    specs_of,
    structure_params,
    to_wire,
    wire_names,
)
from ._readers import (
    decode_base64_image,
    elide_inline_images,
    first_string,
    read_images,
    read_usage,
)
from ._spec import PREDICTIONS, ROUTES, SHAPES, Answer, ModelSpec, Route, TaskVocabulary
from ._wire import FormPart, Parsed, PreparedRequest, RawImage, TaskState, TaskStatus

__all__ = [
    "PREDICTIONS",
    "ROUTES",
    "SHAPES",
    "Adapter",
    "Answer",
    "FormPart",
    "ModelSpec",
    "Parsed",
    "PreparedRequest",
    "ProviderAdapter",
    "RawImage",
    "Route",
    "TaskState",
    "TaskStatus",
    "TaskVocabulary",
    "decode_base64_image",
    "elide_inline_images",
    "param",
    "read_images",
    "read_usage",
]


#: A task id safe as one URL path segment: no '/', '%', control characters, '.' or '..'.
_SAFE_TASK_ID = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9._:@+=~\-]{0,255}")


def is_safe_task_id(task_id: object) -> bool:
    """Whether ``task_id`` may go into a poll URL as one path segment, as is."""
    return isinstance(task_id, str) and _SAFE_TASK_ID.fullmatch(task_id) is not None


@runtime_checkable
class ProviderAdapter(Protocol):
    """The interface the registry and the client rely on. Implementations do no I/O."""

    @property
    def name(self) -> str: ...

    @property
    def models(self) -> tuple[ModelSpec, ...]: ...

    @property
    def asynchronous(self) -> bool: ...

    @property
    def route(self) -> str: ...

    @property
    def image_params(self) -> Mapping[str, str]: ...

    def build_request(
        self, model_path: str, prompt: str, params: Mapping[str, object]
    ) -> PreparedRequest: ...

    def parse(self, body: JSONValue) -> Parsed: ...

    def parse_task(self, body: JSONValue) -> TaskState: ...

    def task_path(self, task_id: str) -> str: ...

    def describe(self, model_path: str) -> ModelInfo: ...


_NO_FIELDS: JSONObject = {}


class Adapter:
    """Base for the built-in adapters: a family of models stated as class attributes.

    ``route`` names an entry of ``ROUTES`` (path template, body envelope, how the key is sent);
    ``tasks`` makes the family task based (``asynchronous``); ``answer`` lists the documented
    answer shapes. Subclasses override :meth:`build_request` / :meth:`parse` only for what the
    data cannot say.
    """

    name: ClassVar[str]
    models: ClassVar[tuple[ModelSpec, ...]]
    params_class: ClassVar[type]
    route: ClassVar[str] = PREDICTIONS
    #: Parameters that carry images, and how the family wants local bytes: "data_uri",
    #: "base64" or "file" (an upload; URLs always pass through). The client converts them
    #: before build_request.
    image_params: ClassVar[Mapping[str, str]] = {}
    tasks: ClassVar[TaskVocabulary | None] = None
    answer: ClassVar[Answer] = Answer()
    #: Other routes a hook sends to, with the body fields allowed there.
    other_routes: ClassVar[Mapping[str, frozenset[str]]] = {}
    #: The response shapes :meth:`parse` accepts, for error messages (default: ``answer``'s).
    expected: ClassVar[str] = ""

    @property
    def asynchronous(self) -> bool:
        """Task based: the submit answers a task id that is polled at :meth:`task_path`."""
        return self.tasks is not None

    @functools.cached_property
    def expects(self) -> str:
        """The answer shapes, for error messages (read on every parse: computed once)."""
        return self.expected or " or ".join(self.answer.shapes)

    # --- requests ----------------------------------------------------------------------------

    def params_for(self, model_path: str) -> type:
        """The parameter class of one model (a model may narrow or extend its family's)."""
        return self._by_path.get(model_path, self.params_class)

    @functools.cached_property
    def _by_path(self) -> dict[str, type]:
        return {m.path: m.params for m in self.models if m.params is not None}

    @functools.cached_property
    def _max_counts(self) -> dict[str, int]:
        return {m.path: m.max_count for m in self.models if m.max_count is not None}

    def validate(self, model_path: str, prompt: str, params: Mapping[str, object]) -> Any:
        check_prompt(prompt, model_path)
        cls = self.params_for(model_path)
        try:
            values = structure_params(cls, params, model_path)
        except InvalidRequestError as exc:
            raise self._explain(exc, model_path) from None
        self._check_count(model_path, values)
        return values

    def fields(self, model_path: str, prompt: str, params: Mapping[str, object]) -> JSONObject:
        """The body fields for ``params`` (validated), without the prompt; the image count is
        always there for a model that takes one (see :attr:`Answer.sent_count`).
        """
        if not params and self._takes_nothing(model_path):
            check_prompt(prompt, model_path)  # the common bulk case: nothing else to validate
            return dict(self._one_image(model_path))
        fields = to_wire(self.validate(model_path, prompt, params))
        one = self._one_image(model_path)
        if one and not any(name in fields for name in self.answer.count_params):
            fields.update(one)
        return fields

    def build_request(
        self, model_path: str, prompt: str, params: Mapping[str, object]
    ) -> PreparedRequest:
        # build_request runs once per generated item: the no-parameter case stays short.
        if not params and self._takes_nothing(model_path):
            check_prompt(prompt, model_path)
            return self._route.build(model_path, prompt, self._one_image(model_path))
        return self._route.build(model_path, prompt, self.fields(model_path, prompt, params))

    def _one_image(self, model_path: str) -> JSONObject:
        """``{count: 1}`` for a model whose family sends its count explicitly, else nothing."""
        known = self._counts_sent.get(model_path)
        if known is None:
            name = self.answer.sent_count
            taken = name is not None and name in wire_names(self.params_for(model_path))
            known = self._counts_sent[model_path] = {name: 1} if taken and name else _NO_FIELDS
        return known

    @functools.cached_property
    def _counts_sent(self) -> dict[str, JSONObject]:
        return {}

    @functools.cached_property
    def _route(self) -> Route:
        return ROUTES[self.route]

    def _takes_nothing(self, model_path: str) -> bool:
        """Whether the model's parameter class is valid with nothing set (edits need an image)."""
        known = self._no_params_ok.get(model_path)
        if known is None:
            known = self._no_params_ok[model_path] = accepts_no_params(self.params_for(model_path))
        return known

    @functools.cached_property
    def _no_params_ok(self) -> dict[str, bool]:
        return {}

    def _check_count(self, model_path: str, values: Any) -> None:
        limit = self._max_counts.get(model_path)
        if limit is None:
            return
        for name in self.answer.count_params:
            count = getattr(values, name, None)
            if count is not None and count > limit:
                raise InvalidRequestError(
                    f"{model_path} generates at most {limit} image(s) per request; got {count}",
                    field=name,
                    model=model_path,
                )

    def _explain(self, exc: InvalidRequestError, model_path: str) -> InvalidRequestError:
        """An unknown parameter that other models of the family take says which ones."""
        if not exc.message.startswith("unknown parameter") or exc.field is None:
            return exc
        others = [m.path for m in self.models if exc.field in specs_of(self.params_for(m.path))]
        if not others:
            return exc
        return InvalidRequestError(
            f"parameter {exc.field!r} is only accepted by {', '.join(others)}",
            field=exc.field,
            model=model_path,
        )

    # --- answers -----------------------------------------------------------------------------

    def parse(self, body: JSONValue) -> Parsed:
        if self.tasks is not None and (task := self._task_handle(body)) is not None:
            return task
        images = read_images(body, self.expects)
        if not images:
            what = "no taskId and no image in submit response" if self.tasks else "no image"
            raise ResponseFormatError(f"response contains {what}", expected=self.expects)
        return Parsed(images=images, usage=read_usage(body))

    def _task_handle(self, body: JSONValue) -> Parsed | None:
        assert self.tasks is not None  # noqa: S101
        if not isinstance(body, dict):
            return None
        output = body.get("output")
        entry = output[0] if isinstance(output, list) and output else output
        for place in (entry, body):
            if isinstance(place, dict):
                keys = self.tasks.id_keys if place is entry else self.tasks.id_keys[:2]
                task_id = first_string(place, *keys)
                if task_id:
                    return Parsed(task_id=task_id, polling_url=first_string(place, "polling_url"))
        return None

    def parse_task(self, body: JSONValue) -> TaskState:
        tasks = self.tasks
        if tasks is None:
            raise NotImplementedError(f"{self.name} models are not task based")
        if not isinstance(body, dict):
            raise ResponseFormatError("task status is not a JSON object", expected=self.expects)
        raw = first_string(body, *tasks.status_keys)
        status = (raw or "").strip().lower()
        message = first_string(body, *tasks.message_keys)
        if tasks.moderated_marker in status:
            return TaskState(status=TaskStatus.MODERATED, message=message or raw)
        if tasks.is_failed(status):
            return TaskState(status=TaskStatus.FAILED, message=message or raw)
        images = read_images(body, self.expects)
        if tasks.is_done(status) or (not status and images):
            if not images:
                raise ResponseFormatError("task is done but has no image", expected=self.expects)
            return TaskState(status=TaskStatus.DONE, parsed=Parsed(images=images))
        return TaskState(status=TaskStatus.PENDING, message=raw)

    def task_path(self, task_id: str) -> str:
        """The poll path (below the tasks URL) of a task this family's submit answered.

        The id must be safe as one path segment: ``..`` would make the poll (which carries
        the key) walk to another path of the API.
        """
        if not is_safe_task_id(task_id):
            raise ResponseFormatError(
                f"task id {task_id[:40]!r} is not safe in a URL path"
                if isinstance(task_id, str)
                else "task id is not a string",
                expected="a task id of letters, digits and . _ - : @ + = ~ (at most 256)",
            )
        return (self.tasks or TaskVocabulary(done=(), failed=())).path(task_id)

    # --- what the family documents (for the registry, the docs and the emulator) -------------

    def describe(self, model_path: str) -> ModelInfo:
        spec = next((m for m in self.models if m.path == model_path), ModelSpec(path=model_path))
        return ModelInfo(
            name=spec.aliases[0] if spec.aliases else spec.path,
            path=spec.path,
            family=self.name,
            aliases=spec.aliases,
            params=describe_params(self.params_for(model_path)),
            asynchronous=self.asynchronous,
            route=self.route,
        )

    def routes(self) -> tuple[str, ...]:
        return (self.route, *self.other_routes)

    def documented_fields(self, model_path: str, route: str) -> frozenset[str]:
        """The body fields (besides model and prompt) the family documents on ``route``."""
        if route != self.route:
            return self.other_routes.get(route, frozenset())
        return wire_names(self.params_for(model_path))

    def required_fields(self, model_path: str, route: str | None = None) -> tuple[str, ...]:
        """Body fields a request on ``route`` (default: the family's own) must carry."""
        if route is not None and route != self.route:
            # A second route exists to upload the family's images (gpt-image edits).
            documented = self.other_routes.get(route, frozenset())
            return tuple(name for name in self.image_params if name in documented)
        specs = specs_of(self.params_for(model_path))
        return tuple((s.wire or n).split(".")[0] for n, s in specs.items() if s.required)

    def max_count(self, model_path: str) -> int | None:
        return self._max_counts.get(model_path)
