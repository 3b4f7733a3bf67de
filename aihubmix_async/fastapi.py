"""FastAPI (and Starlette) integration: one :class:`Client` per process, opened in the app's
lifespan and handed to handlers by a dependency. Importing this module imports FastAPI; the
core package never does.

.. code-block:: python

    from fastapi import Depends, FastAPI
    from aihubmix_async import Client
    from aihubmix_async.fastapi import get_client, install_error_handlers, lifespan

    app = FastAPI(lifespan=lifespan())
    install_error_handlers(app)

    @app.post("/image")
    async def image(prompt: str, client: Client = Depends(get_client)) -> Response:
        result = await client.generate("gpt-image-1", prompt)
        return Response(result.image.data, media_type=result.image.mime_type)
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ._client import Client
from ._errors import (
    AIHubMixError,
    APIStatusError,
    ContentPolicyError,
    InvalidRequestError,
    RateLimitError,
    RequestTimeout,
)

__all__ = ["get_client", "install_error_handlers", "lifespan"]

_STATE = "aihubmix_client"


def lifespan(
    factory: Callable[[], Client] = Client,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that opens one client (``factory()``, by default ``Client()`` configured from
    the environment) for the whole process and closes it at shutdown.
    """

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with factory() as client:
            setattr(app.state, _STATE, client)
            try:
                yield
            finally:
                delattr(app.state, _STATE)

    return _lifespan


def get_client(request: Request) -> Client:
    """Dependency: the process-wide client opened by :func:`lifespan`."""
    client = getattr(request.app.state, _STATE, None)
    if client is None:
        raise RuntimeError("no aihubmix Client: create the app with FastAPI(lifespan=lifespan())")
    return client  # type: ignore[no-any-return]


def _body(error: AIHubMixError, kind: str) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind, "message": error.message}
    if error.request_id:
        body["request_id"] = error.request_id
    if isinstance(error, InvalidRequestError) and error.field:
        body["field"] = error.field
    return {"error": body}


def _answer(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, AIHubMixError):  # installed for AIHubMixError only
        raise exc
    if isinstance(exc, InvalidRequestError):
        return JSONResponse(_body(exc, "invalid_request"), status_code=422)
    if isinstance(exc, ContentPolicyError):
        return JSONResponse(_body(exc, "content_policy"), status_code=422)
    if isinstance(exc, RateLimitError):
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return JSONResponse(_body(exc, "rate_limited"), status_code=429, headers=headers)
    if isinstance(exc, RequestTimeout):
        return JSONResponse(_body(exc, "upstream_timeout"), status_code=504)
    if isinstance(exc, APIStatusError) and exc.status_code == HTTPStatus.SERVICE_UNAVAILABLE:
        return JSONResponse(_body(exc, "upstream_unavailable"), status_code=503)
    return JSONResponse(_body(exc, "upstream_error"), status_code=502)


def install_error_handlers(app: FastAPI) -> None:
    """Map SDK errors to HTTP answers: invalid parameters -> 422, upstream 429 -> 429 with
    Retry-After, timeouts -> 504, upstream unavailable -> 503, other upstream faults -> 502.
    Bodies carry the message and the upstream request id, never the API key.
    """
    app.add_exception_handler(AIHubMixError, _answer)
