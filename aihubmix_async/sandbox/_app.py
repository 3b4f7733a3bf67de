"""The emulator: an aiohttp.web app answering like AIHubMix for every family in the spec."""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

from ._faults import Fault, FaultScript
from ._images import jpeg, png, png_of_size

__all__ = ["DEFAULT_API_KEY", "Sandbox", "SandboxStats"]

DEFAULT_API_KEY = "sk-sandbox"
_JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.define
class SandboxStats:
    """What the emulator saw; tests assert on these."""

    requests: int = 0
    submits: int = 0
    polls: int = 0
    downloads: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    unauthorized: int = 0
    faults: int = 0
    #: Injected faults by "route:kind[:status]", for reconciling outcomes against them.
    fault_kinds: Counter[str] = attrs.Factory(Counter)
    #: Download requests that carried an Authorization header (must stay 0).
    downloads_with_auth: int = 0
    by_model: Counter[str] = attrs.Factory(Counter)
    #: Image inputs seen, keyed "parameter:form" (form: url, data_uri or base64).
    image_inputs: Counter[str] = attrs.Factory(Counter)
    #: Monotonic arrival times of the most recent generation submits.
    submit_times: deque[float] = attrs.Factory(lambda: deque(maxlen=10_000))

    def as_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["by_model"] = dict(self.by_model)
        data["image_inputs"] = dict(self.image_inputs)
        data["fault_kinds"] = dict(self.fault_kinds)
        data["submit_times"] = list(self.submit_times)
        return data


@attrs.define
class _Task:
    polls_left: int
    fate: str  # "ready" | "moderated" | "task_failed" | "never_finish"
    ext: str


@functools.cache
def _b64(kind: str, size: int) -> str:
    data = jpeg() if kind == "jpeg" else (png_of_size(size) if size else png())
    return base64.b64encode(data).decode()


class Sandbox:
    """A running emulator: its URLs, the fault script and the counters."""

    def __init__(
        self,
        *,
        api_key: str | None = DEFAULT_API_KEY,
        pending_polls: int = 1,
        latency: float = 0.0,
        image_bytes: int = 0,
        openai_form: str = "object",
        redirect_downloads: bool = False,
    ) -> None:
        self.api_key = api_key
        self.pending_polls = pending_polls
        self.latency = latency
        self.image_bytes = image_bytes
        self.openai_form = openai_form
        #: Image URLs point at the API host, which redirects to the image host (a CDN hop).
        self.redirect_downloads = redirect_downloads
        self.base_url = ""
        self.cdn_url = ""
        self.stats = SandboxStats()
        self.faults = FaultScript()
        self._tasks: dict[str, _Task] = {}
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"Sandbox(base_url={self.base_url!r}, cdn_url={self.cdn_url!r})"

    def fail(self, kind: str, **options: Any) -> Fault:
        """Script a fault for the next matching request(s); see ``Fault`` for the options."""
        fault = Fault(kind=kind, **options)
        self.faults.add(fault)
        return fault

    # --- apps ------------------------------------------------------------------------------

    def api_app(self) -> web.Application:
        app = web.Application(middlewares=[self._count], client_max_size=64 * 1024**2)
        app.router.add_post("/v1/models/{model:.+}/predictions", self._predictions)
        app.router.add_post("/v1/images/generations", self._images_generations)
        app.router.add_post("/v1/images/edits", self._images_edits)
        app.router.add_get("/v1/tasks/{task_id}", self._task)
        app.router.add_get("/_sandbox/stats", self._stats)
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
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            response = await handler(request)
            response.headers.setdefault("X-Request-Id", f"req_{next(self._ids):08d}")
            return response
        finally:
            stats.in_flight -= 1

    # --- helpers ---------------------------------------------------------------------------

    def _deny(self, request: web.Request) -> web.Response | None:
        """A 401 unless the request carries the accepted Bearer key (any key if none is set)."""
        auth = request.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if key.strip() and (self.api_key is None or key == self.api_key):
            return None
        self.stats.unauthorized += 1
        return self._error(401, "Invalid token", "invalid_api_key")

    def _error(
        self,
        status: int,
        message: str,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> web.Response:
        body = {
            "error": {"message": message, "type": "aihubmix_error", "param": None, "code": code}
        }
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        return web.json_response(body, status=status, headers=headers)

    def _url(self, ext: str) -> str:
        host = self.base_url + "/redirect" if self.redirect_downloads else self.cdn_url + "/img"
        return f"{host}/{uuid.uuid4().hex}.{ext}"

    async def _fault(
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
        if kind == "delay":
            await asyncio.sleep(fault.delay)
            return None
        if kind == "status":
            return self._error(fault.status, fault.message, fault.code, fault.retry_after)
        if kind == "error_body":
            return self._error(200, fault.message, fault.code or "upstream_error")
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

    # --- routes ----------------------------------------------------------------------------

    async def _predictions(self, request: web.Request) -> web.StreamResponse:
        model = request.match_info["model"]
        self.stats.submits += 1
        self.stats.submit_times.append(time.monotonic())
        self.stats.by_model[model] += 1
        if denied := self._deny(request):
            return denied
        fault = await self._fault(request, "submit", model)
        if isinstance(fault, web.StreamResponse):
            return fault
        try:
            payload = await request.json()
        except ValueError:
            return self._error(400, "request body is not valid JSON", "invalid_json")
        params = payload.get("input") if isinstance(payload, dict) else None
        if (
            not isinstance(params, dict)
            or not isinstance(params.get("prompt"), str)
            or not params["prompt"]
        ):
            return self._error(400, "input.prompt is required", "prompt_missing")
        bad_image = self._check_images(params)
        if bad_image:
            return self._error(400, bad_image, "invalid_image")
        if self.latency:
            await asyncio.sleep(self.latency)
        fate = fault.kind if isinstance(fault, Fault) else None
        family = model.split("/", 1)[0]
        name = model.rsplit("/", 1)[-1].lower()
        if fate == "moderated" and family != "bfl":
            return self._error(
                400, "Your request was rejected by the safety system", "moderation_blocked"
            )
        if family in ("openai", "opanai") and name.startswith("gpt-image"):
            return web.json_response(self._gpt_image(params))
        if family in ("openai", "opanai") and name == "dall-e-3":
            return web.json_response({"output": [{"url": self._url("png")}]})
        if family == "google" and name.startswith("imagen"):
            count = (
                params.get("numberOfImages")
                or params.get("sampleCount")
                or (1 if "ultra" in name else 4)
            )
            return web.json_response(
                {"output": [{"url": self._url("png")} for _ in range(int(count))]}
            )
        if family == "bfl" and name.startswith(("flux-kontext", "flux-2")):
            return web.json_response(self._submit_task(params, fate))
        if family == "ideogram":
            return web.json_response({"output": [self._url("png")]})
        if family == "stability":
            n = int(params.get("n") or 1)
            return web.json_response(
                {"output": [{"b64_json": _b64("png", self.image_bytes)} for _ in range(n)]}
            )
        if family in ("qianfan", "doubao"):
            if name in ("qwen-image-edit", "ernie-irag-edit") and not params.get("image"):
                return self._error(400, "input.image is required for edits", "image_missing")
            n = int(params.get("n") or 1)
            if params.get("response_format") in ("b64_json", "base64_json"):
                return web.json_response(
                    {"output": [{"b64_json": _b64("jpeg", 0)} for _ in range(n)]}
                )
            return web.json_response({"output": [{"url": self._url("jpg")} for _ in range(n)]})
        return self._error(503, f"no available channel for model {model}", "model_not_found")

    def _check_images(self, params: dict[str, Any]) -> str | None:
        """Image inputs must be an http(s) URL, a base64 data: URI or bare base64 of an image."""
        for key in ("image", "input_image", "refer_image"):
            values = params.get(key)
            for value in values if isinstance(values, list) else [values]:
                if value is None or value == "":
                    continue
                if not isinstance(value, str):
                    return f"input.{key} must be a string"
                if value.startswith(("http://", "https://")):
                    form = "url"
                else:
                    form, text = "base64", value
                    if value.startswith("data:"):
                        form, text = "data_uri", value.partition(",")[2]
                    try:
                        data = base64.b64decode(text, validate=True)
                    except ValueError:
                        return f"input.{key} is not a URL or valid base64"
                    if not data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"RIFF", b"GIF8")):
                        return f"input.{key} is not an image"
                self.stats.image_inputs[f"{key}:{form}"] += 1
        return None

    def _gpt_image(self, params: dict[str, Any]) -> dict[str, Any]:
        n = int(params.get("n") or 1)
        kind = "jpeg" if params.get("output_format") == "jpeg" else "png"
        data = _b64(kind, 0 if kind == "jpeg" else self.image_bytes)
        usage = {"input_tokens": 37, "output_tokens": 1056 * n, "total_tokens": 37 + 1056 * n}
        if self.openai_form == "list":
            return {"output": [{"b64_json": data} for _ in range(n)], "usage": usage}
        items = [{"bytesBase64": data, "mimeType": kind} for _ in range(n)]
        return {"output": {"b64_json": items, "urls": []}, "usage": usage}

    def _submit_task(self, params: dict[str, Any], fate: str | None) -> dict[str, Any]:
        task_id = f"api.us1.{uuid.uuid4().hex}"
        ext = "png" if params.get("output_format") == "png" else "jpg"
        self._tasks[task_id] = _Task(polls_left=self.pending_polls, fate=fate or "ready", ext=ext)
        polling = f"https://api.us1.bfl.ai/v1/get_result?id={uuid.uuid4()}"
        return {"output": [{"taskId": task_id, "polling_url": polling}]}

    async def _task(self, request: web.Request) -> web.StreamResponse:
        self.stats.polls += 1
        if denied := self._deny(request):
            return denied
        fault = await self._fault(request, "poll", None)
        if isinstance(fault, web.StreamResponse):
            return fault
        task_id = request.match_info["task_id"]
        task = self._tasks.get(task_id)
        if task is None:
            return self._error(404, f"task {task_id} not found", "task_not_found")
        if task.fate == "never_finish" or task.polls_left > 0:
            task.polls_left -= 1
            return web.json_response({"id": task_id, "status": "Pending"})
        del self._tasks[task_id]
        if task.fate == "moderated":
            return web.json_response({"id": task_id, "status": "Content Moderated"})
        if task.fate == "task_failed":
            return web.json_response(
                {"id": task_id, "status": "Error", "message": "upstream failure"}
            )
        return web.json_response(
            {"id": task_id, "status": "Ready", "result": {"sample": self._url(task.ext)}}
        )

    async def _images_generations(self, request: web.Request) -> web.StreamResponse:
        self.stats.submits += 1
        self.stats.submit_times.append(time.monotonic())
        if denied := self._deny(request):
            return denied
        try:
            payload = await request.json()
        except ValueError:
            return self._error(400, "request body is not valid JSON", "invalid_json")
        model = payload.get("model") if isinstance(payload, dict) else None
        self.stats.by_model[str(model)] += 1
        fault = await self._fault(request, "submit", str(model))
        if isinstance(fault, web.StreamResponse):
            return fault
        if not isinstance(payload.get("prompt"), str) or not payload["prompt"]:
            return self._error(400, "prompt is required", "prompt_missing")
        if self.latency:
            await asyncio.sleep(self.latency)
        kind = "jpeg" if payload.get("output_format") == "jpeg" else "png"
        return web.json_response(
            {
                "created": int(time.time()),
                "data": [{"b64_json": _b64(kind, 0), "revised_prompt": None}],
            }
        )

    async def _images_edits(self, request: web.Request) -> web.StreamResponse:
        """OpenAI-compatible edits: multipart with model, prompt, options and an image file."""
        self.stats.submits += 1
        self.stats.submit_times.append(time.monotonic())
        if denied := self._deny(request):
            return denied
        if not request.content_type.startswith("multipart/form-data"):
            return self._error(400, "edits take multipart/form-data", "invalid_content_type")
        form = await request.post()
        model = str(form.get("model", ""))
        self.stats.by_model[f"edits:{model}"] += 1
        fault = await self._fault(request, "submit", model)
        if isinstance(fault, web.StreamResponse):
            return fault
        image = form.get("image")
        if not isinstance(form.get("prompt"), str) or not form["prompt"]:
            return self._error(400, "prompt is required", "prompt_missing")
        if not isinstance(image, web.FileField):
            return self._error(400, "image file is required", "image_missing")
        data = image.file.read()
        if not data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"RIFF", b"GIF8")):
            return self._error(400, "image is not an image", "invalid_image")
        self.stats.image_inputs["image:multipart"] += 1
        n = int(str(form.get("n") or 1))
        kind = "jpeg" if form.get("output_format") == "jpeg" else "png"
        return web.json_response(
            {
                "created": int(time.time()),
                "data": [{"b64_json": _b64(kind, 0)} for _ in range(n)],
                "usage": {
                    "input_tokens": 300,
                    "output_tokens": 1056 * n,
                    "total_tokens": 300 + 1056 * n,
                },
            }
        )

    async def _download(self, request: web.Request) -> web.StreamResponse:
        self.stats.downloads += 1
        if "Authorization" in request.headers:
            self.stats.downloads_with_auth += 1
        fault = await self._fault(request, "download", None)
        if isinstance(fault, web.StreamResponse):
            return fault
        name = request.match_info["name"]
        if name.endswith(".jpg"):
            return web.Response(body=jpeg(), content_type="image/jpeg")
        data = png_of_size(self.image_bytes) if self.image_bytes else png()
        return web.Response(body=data, content_type="image/png")

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{self.cdn_url}/img/{request.match_info['name']}")

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats.as_dict())

    async def _script(self, request: web.Request) -> web.StreamResponse:
        """Script faults over HTTP (for a sandbox running in another process)."""
        payload = await request.json()
        items = payload if isinstance(payload, list) else [payload]
        try:
            for item in items:
                self.fail(**item)
        except (TypeError, ValueError) as exc:
            return self._error(400, str(exc), "bad_fault")
        return web.json_response({"scripted": len(items)})
