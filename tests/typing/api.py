"""Correct uses of the public API: both checkers must accept every line (never executed).

Each family's Literal model names and parameters are accepted; a model only known at run
time goes through ``ModelName``; outcomes narrow to a non-None result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, assert_type

import PIL.Image

from aihubmix_async import (
    BlockingClient,
    BlockingOutcome,
    BlockingResult,
    Client,
    Failure,
    GeneratedImage,
    ImageInput,
    ImageResult,
    KnownModel,
    ModelName,
    Outcome,
    Success,
)


async def generate_per_family(client: Client, picked: KnownModel, upload: BinaryIO) -> None:
    result = await client.generate("gpt-image-1", "a fox", size="1024x1024", quality="low", n=2)
    assert_type(result, ImageResult)
    await client.generate("openai/gpt-image-1", "a fox", background="transparent", download=False)
    await client.generate("opanai/dall-e-3", "a fox", quality="hd", style="natural", n=1)
    await client.generate("imagen-4.0-fast-generate-001", "a fox", numberOfImages=2)
    await client.generate("google/imagen-4.0-ultra-generate-001", "a fox", numberOfImages=1)
    await client.generate("flux-kontext-max", "a fox", aspect_ratio="7:3", safety_tolerance=2)
    await client.generate("flux-2-pro", "a fox", raw=True, seed=7, deadline=60.0)
    await client.generate("FLUX-1.1-pro", "a fox", size="1024x1024", output_format="png")
    await client.generate("ideogram/V3", "a fox", aspect_ratio="16:9", rendering_speed="TURBO")
    await client.generate("ideogram-v3", "a fox", aspect_ratio="16x9")
    await client.generate("qwen-image", "a fox", size="1024*1024", guidance=7.5)
    await client.generate("qwen-image-edit", "a fox", image=Path("in.png"))
    await client.generate("seedream-4.0", "a fox", size="1K", image=["https://x/a.png"])
    await client.generate("nano-banana-pro", "a fox", aspect_ratio="21:9", image_size="4K")
    await client.generate("ernie-irag-edit", "a fox", image=b"\x89PNG", feature="erase")
    await client.generate("gpt-image-1", "edit", image=ImageInput(url="https://x/a.png"))
    await client.generate("gpt-image-1", "edit", image=PIL.Image.new("RGB", (8, 8)))
    await client.generate("flux-kontext-pro", "edit", input_image=upload)
    await client.generate("sd-3.5-large", "a fox", n=4)
    await client.generate(ModelName(picked), "a fox")  # a KnownModel variable spans families
    await client.generate("flux-kontext-pro", "resume", task_id="abc")


async def generate_at_run_time(client: Client, name: str, params: dict[str, Any]) -> None:
    # A plugin's model or a name from a config file: checked at run time only.
    await client.generate(ModelName(name), "a fox", **params)
    await client.generate(ModelName("acme/painter-2"), "a fox", strength=0.4, download=False)


async def batch_and_narrow(client: Client) -> None:
    async with client.batch(["a", "b"], model="dall-e-3", quality="hd", concurrency=4) as batch:
        async for outcome in batch:
            assert_type(outcome, Outcome)
            if isinstance(outcome, Success):
                assert_type(outcome.result, ImageResult)
                await outcome.result.image.save("out/")
            else:
                assert_type(outcome, Failure)
                assert_type(outcome.error, Exception)
            if outcome.ok is True:
                assert_type(outcome.result, ImageResult)
    async with client.batch(["a"], model="imagen-4.0-generate-001", numberOfImages=1) as batch:
        async for outcome in batch:
            match outcome:
                case Success(result=result):
                    assert_type(result, ImageResult)
                case Failure(error=error):
                    assert_type(error, Exception)
    async with client.batch(["a"], concurrency="auto", ordered=True, give_up_after=None):
        pass
    async with client.batch([{"prompt": "a", "model": "x"}], model=ModelName("acme/x"), seed=1):
        pass


async def if_ok_narrows_for_mypy(client: Client) -> None:
    # The README's idiom. mypy narrows a union on a Literal[True]/Literal[False] attribute's
    # truthiness; pyright narrows only `outcome.ok is True` / `== True` (its documented forms),
    # hence the pyright-only ignore, which pyright flags as unnecessary the day it narrows.
    async with client.batch(["a"], model="gpt-image-1") as batch:
        async for outcome in batch:
            if outcome.ok:
                await outcome.result.image.save("out/")  # pyright: ignore[reportOptionalMemberAccess]


def takes_async_types(result: ImageResult, image: GeneratedImage) -> None: ...


def blocking(client: BlockingClient) -> None:
    result = client.generate("gpt-image-1", "a fox", quality="high")
    assert_type(result, BlockingResult)
    assert_type(result.image.save("x.png"), Path)  # save() writes, then returns the path
    takes_async_types(result, result.image)  # subclasses: every field is there
    for outcome in client.batch(["a", "b"], model="flux-kontext-pro", concurrency=2):
        assert_type(outcome, BlockingOutcome)
        if isinstance(outcome, Success):
            assert_type(outcome.result.image.save("out/"), Path)
