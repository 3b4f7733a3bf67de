"""One generation, flat: submit -> (journal the task id) -> poll -> download.

:class:`Generator` turns a model, a prompt and parameters into an :class:`ImageResult` through
the registry's adapter and the :class:`~._exchange.Exchange`. Both ``Client.generate`` and the
batch runner call :meth:`Generator.generate`; neither reaches into the other.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from ._config import USER_AGENT, ClientConfig, origin_of
from ._errors import (
    AIHubMixError,
    ConfigurationError,
    ContentPolicyError,
    GenerationFailedError,
    InvalidRequestError,
    RequestTimeout,
    ResponseFormatError,
    cap_message,
    redact_secret,
)
from ._exchange import IMAGE, Exchange
from ._inputs import encode_image_param
from ._models import CallStats, GeneratedImage, ImageResult, image_type, sniff_mime_type
from ._ratelimit import RateLimiter
from ._registry import Registry
from ._transport import prepared_headers
from .providers import Parsed, ProviderAdapter, RawImage, TaskStatus
from .providers._base import elide_inline_images, is_safe_task_id

__all__ = ["Generator", "Pricer", "TaskHook"]

#: Called (or awaited) with (task_id, request_id) once a submit answered a task id.
TaskHook = Callable[[str, "str | None"], object]
#: Sets a finished result's cost: ``price(model, params, result)`` (``Spend.priced``).
Pricer = Callable[[str, Mapping[str, object], ImageResult], ImageResult]

_NO_DEADLINE = contextlib.nullcontext()
_NO_KEY = "no API key: pass Client(api_key=...) or set AIHUBMIX_API_KEY"


class Generator:
    """Runs generations for one client: its config, registry, exchange and rpm limit.

    Headers are computed once per way of sending the key (``PreparedRequest.auth``), so the hot
    path never merges dicts.
    """

    def __init__(
        self,
        *,
        config: ClientConfig,
        registry: Registry,
        exchange: Exchange,
        rate: RateLimiter | None,
        max_input_bytes: int,
        price: Pricer | None = None,
    ) -> None:
        self._config = config
        #: Every result is priced here, in the generation's own frame: a caller that priced
        #: it afterwards would need a coroutine of its own around this one.
        self._price = price
        self._registry = registry
        self._exchange = exchange
        self._rate = rate
        self._max_input_bytes = max_input_bytes
        self._base_url = config.base_url
        self._tasks_url = config.tasks_url
        self._poll_policy = config.poll
        key = config.api_key
        common = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        auth: dict[str, dict[str, str]] = {
            "bearer": {"Authorization": f"Bearer {key}"},
            "x-goog-api-key": {"x-goog-api-key": key or ""},
        }
        self._get_headers = prepared_headers({**common, **auth["bearer"]} if key else common)
        self._post_headers = {
            name: prepared_headers({**common, **header, "Content-Type": "application/json"})
            for name, header in auth.items()
        }
        #: Image hosts never get the key; the API's own hosts (sandbox URLs) may.
        self._image_headers = prepared_headers({"User-Agent": USER_AGENT})
        self._api_prefixes = (config.base_url + "/", config.tasks_url + "/")
        self._trusted = config.trusted_origins()
        #: Set by ``Client.aclose()``: a batch stops pulling its input once it is.
        self.closed = False

    def refusing_for(self) -> float:
        """Seconds the server has answered this client nothing but 429 (0 if it is not)."""
        return self._exchange.refusing_for()

    def ready(self) -> None:
        """Open the client's session now (a batch does this on entry)."""
        self._exchange.ready()

    async def generate(  # noqa: C901, PLR0912
        self,
        model: str,
        prompt: str,
        params: Mapping[str, object],
        download: bool,  # noqa: FBT001
        deadline: float | None,
        stats: CallStats,
        *,
        task_id: str | None = None,
        on_task: TaskHook | None = None,
    ) -> ImageResult:
        """Submit (or resume ``task_id``), poll, download. Kept as one flat coroutine, over
        50 lines on purpose: every coroutine layer is re-entered on each resume of the HTTP
        exchange, which costs measurable CPU per request (see benchmarks/).
        """
        adapter, path = self._registry.resolve(model)
        exchange = self._exchange
        given = params  # priced as given (image parameters are encoded below)
        if task_id is None:
            if adapter.image_params and any(name in params for name in adapter.image_params):
                params = await self._encode_images(params, adapter.image_params)
            url, body, headers = self._prepare(adapter, path, prompt, params)
            if self._rate is not None:
                await self._rate.acquire()
        else:
            self._check_resume(task_id)
        request_id: str | None = None
        data: Any = None
        try:
            with anyio.fail_after(deadline) if deadline is not None else _NO_DEADLINE:
                if task_id is None:
                    response, data, parsed = await exchange.call(
                        "POST", url, headers=headers, body=body, billed=True, model=path,
                        stats=stats, parse=adapter.parse,
                    )  # fmt: skip
                    request_id = exchange.request_id(response)
                    del response  # parsed: do not hold the body through polls and downloads
                    if parsed.images and parsed.images[0].data is not None:
                        elide_inline_images(data)  # decoded into images: do not hold it twice
                    task_id = parsed.task_id
                    if task_id is not None:
                        _check_task_id(task_id, request_id, path)  # before it is journalled
                        stats.task_id = task_id
                        if on_task is not None:  # journal it before polling: a crash resumes
                            returned = on_task(task_id, request_id)
                            if inspect.isawaitable(returned):
                                await returned
                        if not parsed.images:
                            parsed = await self._poll(adapter, path, task_id, request_id, stats)
                else:
                    stats.task_id = task_id
                    parsed = await self._poll(adapter, path, task_id, None, stats)
                found = parsed.images
                images: tuple[GeneratedImage, ...]
                if len(found) == 1:  # the common case: no task group, no coroutine unless fetched
                    image = _at_hand(found[0], download, path)
                    if image is None:
                        image = await self._download(found[0].url or "", path, stats)
                    images = (image,)
                else:
                    images = await self._materialise(found, download, path, stats)
        except TimeoutError as exc:
            if isinstance(exc, AIHubMixError) or deadline is None:
                raise
            raise RequestTimeout(
                f"generation did not finish within its deadline of {deadline:g}s", model=path
            ) from None
        result = ImageResult(
            model=path,
            images=images,
            usage=parsed.usage,
            request_id=request_id,
            task_id=task_id,
            raw=data,
            prompt=prompt,
            params=params,
        )
        return result if self._price is None else self._price(model, given, result)

    def _check_resume(self, task_id: object) -> None:
        if not isinstance(task_id, str) or not task_id:
            raise InvalidRequestError(
                f"task_id must be a non-empty string, got {task_id!r}", field="task_id"
            )
        if not is_safe_task_id(task_id):
            raise InvalidRequestError(
                f"task_id {task_id[:40]!r} is not safe in a URL path (letters, digits and"
                " . _ - : @ + = ~ only, at most 256, not '.' or '..')",
                field="task_id",
            )
        if not self._config.api_key:
            raise ConfigurationError(_NO_KEY)

    def _prepare(
        self, adapter: ProviderAdapter, path: str, prompt: str, params: Mapping[str, object]
    ) -> tuple[str, bytes, Mapping[str, str]]:
        """URL, body and headers of a submit (validating the parameters first)."""
        request = adapter.build_request(path, prompt, params)
        if not self._config.api_key:
            raise ConfigurationError(_NO_KEY)
        try:
            body, content_type = request.encode()
        except (TypeError, UnicodeEncodeError) as exc:  # orjson: TypeError; stdlib: Unicode...
            raise _unencodable(prompt, params, exc) from None
        headers = self._post_headers.get(request.auth)
        if headers is None:
            raise ConfigurationError(
                f"adapter {adapter.name!r} asks for an unknown auth scheme {request.auth!r}"
            )
        if content_type != "application/json":  # multipart uploads: rare, merge here
            headers = {**headers, "Content-Type": content_type}
        return self._base_url + request.path, body, headers

    async def _encode_images(
        self, params: Mapping[str, object], image_params: Mapping[str, str]
    ) -> dict[str, object]:
        """Image parameters in any accepted form -> the family's wire form (files read in a
        worker thread, never on the event loop).
        """
        encoded = dict(params)
        for name, encoding in image_params.items():
            if name in encoded and encoded[name] is not None:
                encoded[name] = await anyio.to_thread.run_sync(
                    encode_image_param, encoded[name], encoding, self._max_input_bytes
                )
        return encoded

    async def _poll(
        self,
        adapter: ProviderAdapter,
        model: str,
        task_id: str,
        request_id: str | None,
        stats: CallStats,
    ) -> Parsed:
        policy = self._poll_policy
        url = self._tasks_url + adapter.task_path(task_id)
        give_up = anyio.current_time() + policy.deadline
        interval = policy.initial_interval
        while True:
            _, _, state = await self._exchange.call(
                "GET", url, headers=self._get_headers, billed=False, model=model, stats=stats,
                parse=adapter.parse_task,
            )  # fmt: skip
            if state.status is TaskStatus.DONE:
                return state.parsed  # type: ignore[no-any-return]
            if state.status is not TaskStatus.PENDING:
                moderated = state.status is TaskStatus.MODERATED
                failed = (ContentPolicyError if moderated else GenerationFailedError)(
                    f"task ended {state.status.value}: {cap_message(state.message or 'no detail')}",
                    request_id=request_id,
                    model=model,
                    task_id=task_id,
                )
                raise redact_secret(failed, self._config.api_key)  # the server's own words
            if anyio.current_time() + interval > give_up:
                raise RequestTimeout(
                    f"task {task_id} still pending after the {policy.deadline:g}s poll deadline",
                    request_id=request_id,
                    model=model,
                )
            await anyio.sleep(interval)
            interval = min(interval * policy.multiplier, policy.max_interval)

    async def _materialise(
        self,
        raw: tuple[RawImage, ...],
        download: bool,  # noqa: FBT001
        model: str,
        stats: CallStats,
    ) -> tuple[GeneratedImage, ...]:
        if not raw:
            raise ResponseFormatError(
                "response contains no image", expected="at least one image", model=model
            )
        results: list[GeneratedImage | None] = [None] * len(raw)

        async def one(i: int, item: RawImage) -> None:
            results[i] = await self._image(item, download, model, stats)

        async with anyio.create_task_group() as tg:
            for i, item in enumerate(raw):
                tg.start_soon(one, i, item)
        return tuple(r for r in results if r is not None)

    async def _image(
        self,
        item: RawImage,
        download: bool,  # noqa: FBT001
        model: str,
        stats: CallStats,
    ) -> GeneratedImage:
        image = _at_hand(item, download, model)
        return image if image is not None else await self._download(item.url or "", model, stats)

    async def _download(self, url: str, model: str, stats: CallStats) -> GeneratedImage:
        # The key goes only to the API's own hosts, never to the hosts image URLs point at.
        trusted = url.startswith(self._api_prefixes) or origin_of(url) in self._trusted
        response, _, mime = await self._exchange.call(
            "GET", url, headers=self._get_headers if trusted else self._image_headers,
            billed=False, model=model, stats=stats, parse=IMAGE,
        )  # fmt: skip
        return GeneratedImage(data=response.body, mime_type=mime, url=url)


def _at_hand(item: RawImage, download: bool, model: str) -> GeneratedImage | None:  # noqa: FBT001
    """The image when nothing is to fetch (inline bytes, or a URL not to download); None for
    a URL to download. Either way checked: the bytes are an image, the URL well formed.
    """
    if item.data is not None:
        mime = image_type(item.data)  # the bytes decide, whatever mimeType claims
        if mime is None:
            raise ResponseFormatError(
                f"inline image is not a PNG, JPEG, WebP or GIF image"
                f" (claimed {item.mime_type or 'no type'})",
                expected="image bytes",
                model=model,
            )
        return GeneratedImage(data=item.data, mime_type=mime)
    url = item.url or ""
    if not url.startswith(("https://", "http://")):
        raise ResponseFormatError(
            "image URL has an unsupported scheme", expected="an http(s) image URL", model=model
        )
    if not _well_formed(url):
        raise ResponseFormatError(
            "image URL is malformed (host or port)", expected="an http(s) image URL", model=model
        )
    if not download:
        return GeneratedImage(data=None, mime_type=_claimed_type(item.mime_type), url=url)
    return None


#: The common image URL (a plain host name, an optional port of up to five digits): checked
#: without urlsplit, which costs microseconds per item. Anything else takes the long way.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(?::([0-9]{1,5}))?(?:[/?#]|\Z)")


def _well_formed(url: str) -> bool:
    """Whether the URL's host and port parse (a bad port or IPv6 literal raised ValueError
    from deep in aiohttp).
    """
    plain = _PLAIN_URL.match(url)
    if plain is not None:
        port = plain.group(1)
        return port is None or 0 < int(port) <= 65535
    try:
        parts = urlsplit(url)
        return bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:
        return False


def _unencodable(prompt: str, params: Mapping[str, object], exc: Exception) -> InvalidRequestError:
    """The typed error for a body that cannot be encoded, naming the field: a lone surrogate
    (e.g. from a mis-decoded file name) is not UTF-8 and cannot be sent.
    """
    for field, value in (("prompt", prompt), *params.items()):
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                return InvalidRequestError(
                    f"{field} holds text that is not valid Unicode (a lone surrogate such as"
                    " '\\udcff'); it cannot be sent",
                    field=field,
                )
    # Parameters are validated to plain types first: only a surrogate makes encoding fail.
    return InvalidRequestError(f"the request cannot be encoded: {exc}")  # pragma: no cover


def _check_task_id(task_id: str, request_id: str | None, model: str) -> None:
    if not is_safe_task_id(task_id):
        raise ResponseFormatError(
            f"task id {task_id[:40]!r} is not safe in a URL path",
            expected="a task id of letters, digits and . _ - : @ + = ~ (at most 256)",
            request_id=request_id,
            model=model,
        )


def _claimed_type(mime_type: str | None) -> str:
    return sniff_mime_type(b"", mime_type) if mime_type else "application/octet-stream"
