"""A FastAPI service over aihubmix-async: one Client per process, opened in the lifespan.

    AIHUBMIX_API_KEY=... uvicorn examples.fastapi_app:app
    # or, with no key and no network, against the built-in emulator:
    aihubmix-async sandbox --port 8001 &
    export AIHUBMIX_BASE_URL=http://127.0.0.1:8001 AIHUBMIX_API_KEY=sk-sandbox
    uvicorn examples.fastapi_app:app

POST /generate  {"model", "prompt", "params"}  -> the image (image/png ...), or JSON with base64
                                                   when called with ?format=json
POST /batch     {"model", "prompts", "params"} -> NDJSON, one line per prompt as it finishes;
                                                   a client that disconnects cancels the rest
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from aihubmix_async import Client, GeneratedImage, ModelName, Outcome
from aihubmix_async.fastapi import get_client, install_error_handlers, lifespan

app = FastAPI(title="images", lifespan=lifespan())
AIHubMix = Annotated[Client, Depends(get_client)]
install_error_handlers(app)


class GenerateBody(BaseModel):
    model: str
    prompt: str
    params: dict[str, Any] = Field(default_factory=dict)


class BatchBody(BaseModel):
    model: str
    prompts: list[str]
    params: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = 8


@app.post("/generate", response_model=None)
async def generate(
    body: GenerateBody,
    client: AIHubMix,
    output: Annotated[str, Query(alias="format")] = "image",
) -> Response | dict[str, Any]:
    # The model comes from the request: ModelName says "checked at run time".
    result = await client.generate(ModelName(body.model), body.prompt, **body.params)
    if output == "json":
        return {
            "model": result.model,
            "request_id": result.request_id,
            "images": [
                {"mime_type": image.mime_type, "b64": _b64(image)} for image in result.images
            ],
        }
    image = result.image
    return Response(image.data, media_type=image.mime_type)


def _b64(image: GeneratedImage) -> str:
    assert image.data is not None  # downloaded: these handlers never pass download=False
    return base64.b64encode(image.data).decode()


def _line(outcome: Outcome) -> str:
    record: dict[str, Any] = {"index": outcome.index, "ok": outcome.ok}
    if outcome.result is not None:
        record["request_id"] = outcome.result.request_id
        record["images"] = [
            {"mime_type": image.mime_type, "b64": _b64(image)} for image in outcome.result.images
        ]
    else:
        record["error"] = {"type": type(outcome.error).__name__, "message": str(outcome.error)}
    return json.dumps(record) + "\n"


@app.post("/batch")
async def batch(body: BatchBody, client: AIHubMix) -> StreamingResponse:
    # Built here so bad parameters are refused (422) before the stream starts.
    runner = client.batch(
        body.prompts, model=ModelName(body.model), concurrency=body.concurrency, **body.params
    )

    async def lines() -> AsyncIterator[str]:
        # If the client disconnects, Starlette cancels this generator; leaving the block
        # cancels the in-flight generations, so no more upstream calls are made.
        async with runner as outcomes:
            async for outcome in outcomes:
                yield _line(outcome)

    return StreamingResponse(lines(), media_type="application/x-ndjson")
