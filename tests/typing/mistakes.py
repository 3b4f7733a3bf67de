"""The mistakes issue 12 lists: each line must be an error for mypy and for pyright.

mypy reports each as ``call-overload`` (no overload matches); ``warn_unused_ignores`` (part of
``--strict``) fails the gate if one stops being an error. pyright's rule is named per line;
``reportUnnecessaryTypeIgnoreComment`` with mypy's comments switched off does the same there.
"""

from __future__ import annotations

from aihubmix_async import BlockingClient, Client


async def generate(client: Client) -> None:
    await client.generate("gpt-image-1", "x", qualty="low")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    await client.generate("gpt-image-1", "x", size="1024x1000")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    await client.generate("gpt-image-1", "x", n="two")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    await client.generate("gpt-imag-1", "x")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    await client.generate("imagen-4.0-fast-generate-001", "x", numberOfImages=9)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    await client.generate("dall-e-3", "x", aspectRatio="16:9")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    # The ultra model makes one image per request.
    await client.generate("imagen-4.0-ultra-generate-001", "x", numberOfImages=2)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    # A required parameter (the image to edit) left out.
    await client.generate("qwen-image-edit", "x")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    # A verb option of the wrong type.
    await client.generate("dall-e-3", "x", download="yes")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


def batch(client: Client) -> None:
    client.batch(["a"], model="gpt-image-1", qualty="low")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    client.batch(["a"], model="gpt-image-1", size="1024x1000")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    client.batch(["a"], model="gpt-image-1", n="two")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    client.batch(["a"], model="gpt-imag-1")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    client.batch(["a"], model="imagen-4.0-generate-001", numberOfImages=9)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    client.batch(["a"], model="dall-e-3", aspectRatio="16:9")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    client.batch(["a"], model="dall-e-3", concurrency="fast")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


def blocking(client: BlockingClient) -> None:
    client.generate("gpt-image-1", "x", qualty="low")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    client.generate("gpt-imag-1", "x")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    client.generate("imagen-4.0-generate-001", "x", numberOfImages=9)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    client.batch(["a"], model="dall-e-3", aspectRatio="16:9")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


async def outcome_without_narrowing(client: Client) -> None:
    async with client.batch(["a"], model="gpt-image-1") as outcomes:
        async for outcome in outcomes:
            await outcome.result.image.save("x.png")  # type: ignore[union-attr]  # pyright: ignore[reportOptionalMemberAccess]
