"""The emulator: an aiohttp.web app answering like AIHubMix for every registered family.

Its routes, the fields each family accepts, the answer shapes and the task vocabulary all come
from the provider specs (``providers/``); this module holds only server behaviour: keys,
scripted faults, counters and events, downloads from a second host.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .._registry import Registry
from ..providers import BUILTIN_ADAPTERS, ROUTES, Adapter, Route
from ..providers._spec import Unwrapped
from ._catalogue import catalogue_body
from ._families import Problem, check_body, find_family, render_answer
from ._faults import Fault, FaultScript
from ._images import ImageSpec, image_for, png_of_size, spec_for
from ._limits import KeyLimit
from ._stats import MAX_EVENTS, Event, SandboxStats
from ._tasks import TaskStore

__all__ = ["DEFAULT_API_KEY", "Event", "Sandbox", "SandboxStats"]

DEFAULT_API_KEY = "sk-sandbox"
_JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Shapes ``openai_form="list"`` swaps in (for families that document both).
_LIST_FORM = {"output.b64_json[].bytesBase64": "output[].b64_json"}


class Sandbox:
    """A running emulator: its URLs, the fault script, the counters and the event log."""

    def __init__(
        self,
        *,
        api_key: str | None = DEFAULT_API_KEY,
        pending_polls: int = 1,
        latency: float = 0.0,
        image_bytes: int = 0,
        openai_form: str = "object",
        redirect_downloads: bool = False,
        registry: Registry | None = None,
        key_concurrency: int | None = None,
        key_rpm: int | None = None,
    ) -> None:
        self.api_key = api_key
        #: Per-key limit on API requests (submits and polls): beyond it, an immediate 429.
        self.key_limit = KeyLimit(concurrency=key_concurrency, rpm=key_rpm)
        self.pending_polls = pending_polls
        self.latency = latency
        self.image_bytes = image_bytes
        self.shape_swaps = _LIST_FORM if openai_form == "list" else {}
        #: Image URLs point at the API host, which redirects to the image host (a CDN hop).
        self.redirect_downloads = redirect_downloads
        #: The families served: the built-ins plus installed entry-point plugins by default.
        self.registry = registry or Registry.default()
        self.base_url = ""
        self.cdn_url = ""
        self.stats = SandboxStats()
        #: Everything seen, in arrival order (bounded): assert on order, not on wall time.
        self.events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self.faults = FaultScript()
        self.tasks = TaskStore()
        self._ids = itertools.count(1)
        #: Prices the catalogue (``GET /api/v1/models``) lists instead of the snapshot's.
        self.prices: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Sandbox(base_url={self.base_url!r}, cdn_url={self.cdn_url!r})"

    def fail(self, kind: str, **options: Any) -> Fault:
        """Script a fault for the next matching request(s); see ``Fault`` for the options."""
        fault = Fault(kind=kind, **options)
        self.faults.add(fault)
        return fault

    def record(self, route: str, model: str | None, kind: str) -> None:
        self.events.append(Event(time.monotonic(), route, model, kind))

    # --- apps ------------------------------------------------------------------------------

    def api_app(self) -> web.Application:
        app = web.Application(middlewares=[self._count], client_max_size=64 * 1024**2)
        for route in ROUTES.values():
            app.router.add_post(
                route.path.replace("{model}", "{model:.+}"), self._generation_handler(route)
            )
        # Entry-point plugins are looked up lazily (on the first unknown model), so the poll
        # routes mounted up front are those of the built-in task vocabularies.
        poll_paths = {
            a.tasks.poll_path
            for a in BUILTIN_ADAPTERS
            if isinstance(a, Adapter) and a.tasks is not None
        }
        for poll_path in sorted(poll_paths):
            app.router.add_get(poll_path, self._task)
        app.router.add_get("/api/v1/models", self._catalogue)
        app.router.add_get("/_sandbox/stats", self._stats)
        app.router.add_get("/_sandbox/events", self._events)
        app.router.add_post("/_sandbox/faults", self._script)
        app.router.add_get("/img/{name}", self._download)  # when no second host could be bound
        app.router.add_get("/redirect/{name}", self._redirect)
        return app

    def cdn_app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        app.router.add_get("/img/{name}", self._download)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        kind = _kind(request)
        self.stats.enter(kind)
        try:
            if kind in ("submit", "poll"):
                response = await self._limited(request, handler, kind)
            else:
                response = await handler(request)
            response.headers.setdefault("X-Request-Id", f"req_{next(self._ids):08d}")
            return response
        finally:
            self.stats.leave(kind)

    async def _limited(
        self, request: web.Request, handler: Handler, kind: str
    ) -> web.StreamResponse:
        """``handler`` counted against its key, or an immediate 429 beyond the key's limit."""
        headers = request.headers
        key = headers.get("Authorization") or headers.get("x-goog-api-key") or ""
        admitted = self.key_limit.admit(key)
        if not isinstance(admitted, int):
            self.stats.limited += 1
            self.record("tasks" if kind == "poll" else "submit", None, "limited")
            return _error(429, admitted.message, "rate_limit_exceeded", admitted.retry_after)
        self.stats.key_in_flight_seen.append(admitted)
        self.stats.max_key_in_flight = max(self.stats.max_key_in_flight, admitted)
        try:
            return await handler(request)
        finally:
            self.key_limit.leave(key)

    # --- helpers ---------------------------------------------------------------------------

    def _deny(self, request: web.Request, auth: str, route: str) -> web.Response | None:
        """A 401 unless the request carries the accepted key where ``auth`` says."""
        if auth == "x-goog-api-key":
            key = request.headers.get("x-goog-api-key", "")
        else:
            header = request.headers.get("Authorization", "")
            key = header[7:] if header.startswith("Bearer ") else ""
        if key.strip() and (self.api_key is None or key == self.api_key):
            return None
        self.stats.unauthorized += 1
        self.record(route, None, "unauthorized")
        return _error(401, "Invalid token", "invalid_api_key")

    def _reject(self, route: str, model: str | None, problem: Problem) -> web.Response:
        self.stats.rejected += 1
        self.record(route, model, "rejected")
        return _error(problem.status, problem.message, problem.code, param=problem.param)

    def _url(self, ext: str, spec: ImageSpec) -> str:
        """An image URL; its name carries the picture's colours and size (no server state)."""
        host = self.base_url + "/redirect" if self.redirect_downloads else self.cdn_url + "/img"
        return f"{host}/{spec.token()}-{uuid.uuid4().hex}.{ext}"

    async def _fault(  # noqa: PLR0911
        self, request: web.Request, route: str, model: str | None
    ) -> web.StreamResponse | Fault | None:
        """Apply a scripted fault: a response to send instead, a fate to carry, or None."""
        fault = self.faults.take(route, model)
        if fault is None:
            return None
        self.stats.faults += 1
        kind = fault.kind
        label = f"{route}:{kind}" + (f":{fault.status}" if kind == "status" else "")
        self.stats.fault_kinds[label] += 1
        self.record(route, model, f"fault:{label}")
        if kind == "delay":
            await asyncio.sleep(fault.delay)
            return None
        if kind == "status":
            return _error(fault.status, fault.message, fault.code, fault.retry_after)
        if kind == "error_body":
            return _error(200, fault.message, fault.code or "upstream_error")
        if kind == "malformed":
            return web.Response(status=200, text="<html>502 Bad Gateway</html>", content_type=_JSON)
        if kind == "truncated":
            return web.Response(status=200, body=b'{"output": [{"url": "http', content_type=_JSON)
        if kind == "reset":
            response = web.StreamResponse(status=200, headers={"Content-Type": _JSON})
            response.content_length = 4096
            await response.prepare(request)
            await response.write(b'{"output": [')
            if request.transport is not None:
                request.transport.close()
            return response
        return fault  # a fate for the generation itself (moderated, task_failed, never_finish)

    # --- generation routes -----------------------------------------------------------------

    def _generation_handler(self, route: Route) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._generation(request, route)

        return handle

    async def _generation(self, request: web.Request, route: Route) -> web.StreamResponse:
        self.stats.submits += 1
        self.stats.submit_times.append(time.monotonic())
        if denied := self._deny(request, route.auth, route.name):
            return denied
        body = await self._read_body(request, route)
        if isinstance(body, Problem):
            return self._reject(route.name, None, body)
        model = body.model
        self.stats.by_model[f"edits:{model}" if route.envelope == "form" else str(model)] += 1
        self.record(route.name, model, "submit")
        fault = await self._fault(request, "submit", model)
        if isinstance(fault, web.StreamResponse):
            return fault
        found = find_family(self.registry, model)
        if found is None:
            return _error(503, f"no available channel for model {model}", "model_not_found")
        adapter, path = found
        problem = check_body(adapter, path, route, body, self.stats.image_inputs)
        if problem is not None:
            return self._reject(route.name, model, problem)
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._answer(adapter, path, route, body, fault)

    async def _read_body(self, request: web.Request, route: Route) -> Unwrapped | Problem:
        model = request.match_info.get("model")
        if route.envelope == "form":
            if not request.content_type.startswith("multipart/form-data"):
                return Problem(400, "this route takes multipart/form-data", "invalid_content_type")
            form = await request.post()
            payload: Any = {
                name: value.file.read() if isinstance(value, web.FileField) else str(value)
                for name, value in form.items()
            }
        else:
            try:
                payload = await request.json()
            except ValueError:
                return Problem(400, "request body is not valid JSON", "invalid_json")
        unwrapped = route.unwrap(payload, model)
        if isinstance(unwrapped, str):
            return Problem(400, unwrapped, "invalid_body")
        return unwrapped

    def _answer(
        self, adapter: Adapter, path: str, route: Route, body: Unwrapped, fault: Any
    ) -> web.StreamResponse:
        fate = fault.kind if isinstance(fault, Fault) else None
        if adapter.tasks is not None and route.name == adapter.route:
            ext = "png" if adapter.answer.image_format_for(body.fields) == "png" else "jpg"
            url = self._url(ext, spec_for(body.prompt, body.fields))
            submitted = self.tasks.submit(adapter.tasks, self.pending_polls, fate, url)
            return web.json_response(submitted)
        if fate == "moderated":
            return _error(
                400, "Your request was rejected by the safety system", "moderation_blocked"
            )
        answer = render_answer(
            adapter, path, route, body.fields, prompt=body.prompt,
            url=self._url, image_bytes=self.image_bytes, swaps=self.shape_swaps,
        )  # fmt: skip
        return web.json_response(answer)

    # --- tasks, downloads, control ---------------------------------------------------------

    async def _task(self, request: web.Request) -> web.StreamResponse:
        self.stats.polls += 1
        self.record("tasks", None, "poll")
        if denied := self._deny(request, "bearer", "tasks"):
            return denied
        fault = await self._fault(request, "poll", None)
        if isinstance(fault, web.StreamResponse):
            return fault
        task_id = request.match_info["task_id"]
        state = self.tasks.poll(task_id)
        if state is None:
            return _error(404, f"task {task_id} not found", "task_not_found")
        return web.json_response(state)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        self.stats.downloads += 1
        self.record("cdn", None, "download")
        if "Authorization" in request.headers:
            self.stats.downloads_with_auth += 1
        fault = await self._fault(request, "download", None)
        if isinstance(fault, web.StreamResponse):
            return fault
        name = request.match_info["name"]
        if name.endswith(".jpg"):
            data = image_for(ImageSpec.from_token(name), "jpeg")
            return web.Response(body=data, content_type="image/jpeg")
        if self.image_bytes:
            data = png_of_size(self.image_bytes)
        else:
            data = image_for(ImageSpec.from_token(name), "png")
        return web.Response(body=data, content_type="image/png")

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{self.cdn_url}/img/{request.match_info['name']}")

    async def _stats(self, request: web.Request) -> web.StreamResponse:  # noqa: ARG002
        return web.json_response(self.stats.as_dict())

    async def _catalogue(self, request: web.Request) -> web.StreamResponse:
        self.record("catalogue", None, "catalogue")
        return web.json_response(catalogue_body(self.registry, self.prices, request.query))

    async def _events(self, request: web.Request) -> web.StreamResponse:  # noqa: ARG002
        return web.json_response([list(event) for event in self.events])

    async def _script(self, request: web.Request) -> web.StreamResponse:
        """Script faults over HTTP (for a sandbox running in another process)."""
        payload = await request.json()
        items = payload if isinstance(payload, list) else [payload]
        try:
            for item in items:
                self.fail(**item)
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc), "bad_fault")
        return web.json_response({"scripted": len(items)})


def _kind(request: web.Request) -> str:
    path = request.path
    if path.startswith(("/img/", "/redirect/")):
        return "download"
    if request.method == "GET":
        return "control" if path.startswith(("/_sandbox/", "/api/")) else "poll"
    return "control" if path.startswith("/_sandbox/") else "submit"


def _error(
    status: int,
    message: str,
    code: str | None = None,
    retry_after: float | None = None,
    *,
    param: str | None = None,
) -> web.Response:
    """A server-style error: ``{"error": {message, type, param, code}}`` (X-Request-Id is added
    by the middleware).
    """
    kind = "invalid_request_error" if 400 <= status < 500 else "aihubmix_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return web.json_response(body, status=status, headers=headers)
