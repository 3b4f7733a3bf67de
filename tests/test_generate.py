"""Every model generates a real, decodable image through Client.generate against the sandbox."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aihubmix_async import (
    Client,
    GeneratedImage,
    ImageResult,
    InvalidRequestError,
    ModelInfo,
    ModelName,
    NotFoundError,
    Registry,
    __version__,
)
from aihubmix_async.providers import ModelSpec, Parsed, PreparedRequest, RawImage, TaskState
from aihubmix_async.sandbox import Sandbox, serve

from .support import decode_image, make_client

#: The names exactly as the seed list writes them.
SEED_MODELS = [
    "opanai/gpt-image-1",
    "opanai/dall-e-3",
    "imagen-4.0-ultra-generate-001",
    "imagen-4.0-generate-001",
    "imagen-4.0-fast-generate-001",
    "imagen-4.0-fast-generate-preview-06-06",
    "imagen-3.0-generate-002",
    "flux-kontext-max",
    "flux-kontext-pro",
    "FLUX.1-Kontext-pro",
    "FLUX-1.1-pro",
    "ideogram/V3",
    "stability/Stable-Diffusion-3-5-Large",
]
#: The same models by their namespaced path (what the alias resolves to and is sent as).
NAMESPACED = {
    "opanai/gpt-image-1": "opanai/gpt-image-1",
    "opanai/dall-e-3": "opanai/dall-e-3",
    "imagen-4.0-ultra-generate-001": "google/imagen-4.0-ultra-generate-001",
    "imagen-4.0-generate-001": "google/imagen-4.0-generate-001",
    "imagen-4.0-fast-generate-001": "google/imagen-4.0-fast-generate-001",
    "imagen-4.0-fast-generate-preview-06-06": "google/imagen-4.0-fast-generate-preview-06-06",
    "imagen-3.0-generate-002": "google/imagen-3.0-generate-002",
    "flux-kontext-max": "bfl/flux-kontext-max",
    "flux-kontext-pro": "bfl/flux-kontext-pro",
    "FLUX.1-Kontext-pro": "FLUX.1-Kontext-pro",
    "FLUX-1.1-pro": "FLUX-1.1-pro",
    "ideogram/V3": "ideogram/V3",
    "stability/Stable-Diffusion-3-5-Large": "stability/Stable-Diffusion-3-5-Large",
}
NEWER_MODELS = {
    "openai/gpt-image-1": {},
    "gpt-image-1-mini": {},
    "openai/gpt-image-1.5": {},
    "Qwen-Image": {},
    "Qwen-Image-Edit": {"image": "https://example.test/cat.png"},
    "doubao-seedream-4-0": {},
    "doubao/doubao-seedream-4-5": {"size": "2K"},
    "irag-1.0": {},
    "ernie-irag-edit": {"image": "https://example.test/cat.png"},
    "flux-2-pro": {},
    "bfl/flux-2-flex": {},
}


def assert_real_images(result: ImageResult) -> None:
    assert result.images
    for image in result.images:
        fmt, size = decode_image(image.data)
        assert image.mime_type == f"image/{fmt.lower()}"
        assert size[0] > 0


@pytest.mark.parametrize("model", SEED_MODELS)
async def test_seed_model_by_its_seed_name(client: Client, sandbox: Sandbox, model: str) -> None:
    """The seed's own spelling generates a decodable image, sent on the documented path."""
    result = await client.generate(ModelName(model), "a lighthouse at dawn")
    assert_real_images(result)
    assert result.model == NAMESPACED[model]
    assert sandbox.stats.by_model[NAMESPACED[model]] == 1
    assert result.request_id is not None


@pytest.mark.parametrize("model", sorted(set(NAMESPACED.values())))
async def test_seed_model_by_namespaced_path(client: Client, model: str) -> None:
    """The namespaced path works too, and is sent exactly as written."""
    result = await client.generate(ModelName(model), "a lighthouse at dawn")
    assert_real_images(result)
    assert result.model == model


@pytest.mark.parametrize(("model", "params"), NEWER_MODELS.items())
async def test_newer_models(client: Client, model: str, params: dict[str, Any]) -> None:
    """The newer documented models generate too."""
    assert_real_images(await client.generate(ModelName(model), "a red fox in snow", **params))


async def test_alias_resolves_to_documented_path(client: Client, sandbox: Sandbox) -> None:
    """A short alias is sent as the currently documented namespaced path."""
    result = await client.generate("gpt-image-1", "a cat")
    assert result.model == "openai/gpt-image-1"
    assert sandbox.stats.by_model == {"openai/gpt-image-1": 1}


async def test_gpt_image_object_form_carries_usage_and_raw(client: Client) -> None:
    """gpt-image's object form yields the inline images, token usage and the raw JSON."""
    result = await client.generate("gpt-image-1", "a cat", n=2, quality="low")
    assert len(result.images) == 2
    assert result.usage is not None
    assert result.usage.total_tokens == 37 + 2 * 1056
    assert isinstance(result.raw, dict)
    assert "output" in result.raw
    assert all(image.url is None for image in result.images)


async def test_gpt_image_list_form_is_parsed() -> None:
    """The list form output[]{b64_json} (seen in the Dify plugin) is accepted as well."""
    async with serve(openai_form="list") as sandbox, make_client(sandbox) as client:
        result = await client.generate("gpt-image-1", "a cat", output_format="jpeg")
    assert decode_image(result.image.data)[0] == "JPEG"
    assert result.image.mime_type == "image/jpeg"


async def test_imagen_returns_requested_count(client: Client, sandbox: Sandbox) -> None:
    """As many images as numberOfImages asks come back, each downloaded from the image host."""
    result = await client.generate("imagen-4.0-generate-001", "a cat", numberOfImages=3)
    assert len(result.images) == 3
    assert all(image.url and image.url.startswith(sandbox.cdn_url) for image in result.images)
    assert sandbox.stats.downloads == 3


async def test_download_false_keeps_only_urls(client: Client, sandbox: Sandbox) -> None:
    """download=False returns the URLs without fetching them: no data (None), not empty bytes."""
    result = await client.generate("dall-e-3", "a cat", download=False)
    assert result.image.url is not None
    assert result.image.data is None
    assert sandbox.stats.downloads == 0


async def test_flux_task_is_polled_until_ready(sandbox: Sandbox) -> None:
    """A Flux async model submits, polls through pending states, then downloads the sample."""
    sandbox.pending_polls = 3
    async with make_client(sandbox) as client:
        result = await client.generate("flux-kontext-max", "a fox", aspect_ratio="16:9")
    assert result.task_id is not None
    assert result.task_id.startswith("api.us1.")
    assert sandbox.stats.polls == 4
    assert decode_image(result.image.data)[0] == "JPEG"


async def test_key_is_never_sent_to_image_hosts(client: Client, sandbox: Sandbox) -> None:
    """URL outputs are downloaded without the Authorization header."""
    await client.generate("imagen-4.0-generate-001", "a cat", numberOfImages=2)
    await client.generate("flux-kontext-pro", "a cat")
    assert sandbox.stats.downloads == 3
    assert sandbox.stats.downloads_with_auth == 0


async def test_save_writes_atomically(client: Client, tmp_path: Path) -> None:
    """save() writes the bytes under the final name, leaving no temporary file behind."""
    result = await client.generate("ideogram/V3", "a cat")
    written = await result.image.save(tmp_path / "out" / "cat.png", provenance=False)
    assert written.read_bytes() == result.image.data
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cat.png"]
    into_dir = await result.image.save(tmp_path / "out")
    assert into_dir.name == "image.png"


async def test_save_refuses_an_undownloaded_image(tmp_path: Path) -> None:
    """An image fetched with download=False cannot be saved (there are no bytes)."""
    image = GeneratedImage(data=None, mime_type="image/png", url="https://cdn.test/x.png")
    with pytest.raises(ValueError, match="not downloaded"):
        await image.save(tmp_path / "x.png")


async def test_generate_with_task_id_resumes_without_submitting(sandbox: Sandbox) -> None:
    """generate(task_id=...) polls and downloads a journaled task: no second submit (no bill)."""
    sandbox.pending_polls = 2
    journaled: list[str] = []

    def journal_then_crash(request: object, task_id: str, request_id: str | None) -> None:
        journaled.append(task_id)
        raise RuntimeError("simulated crash right after journaling")

    async with make_client(sandbox) as client:
        async with client.batch(
            ["a fox"], model="flux-kontext-max", on_task=journal_then_crash
        ) as b:
            [interrupted] = [o async for o in b]
        assert not interrupted.ok
        assert (sandbox.stats.submits, sandbox.stats.polls) == (1, 0)
        result = await client.generate("flux-kontext-max", "a fox", task_id=journaled[0])
    assert sandbox.stats.submits == 1  # the resume cost nothing
    assert sandbox.stats.polls == 3
    assert result.task_id == journaled[0]
    assert decode_image(result.image.data)[0] == "JPEG"


async def test_generate_with_an_unknown_task_id_is_a_typed_error(client: Client) -> None:
    """Resuming a task the server does not know fails with the server's 404, nothing submitted."""
    with pytest.raises(NotFoundError) as caught:
        await client.generate("flux-kontext-max", "a fox", task_id="api.us1.nope")
    assert caught.value.status_code == 404
    with pytest.raises(InvalidRequestError):
        await client.generate("flux-kontext-max", "a fox", task_id="")


class HeaderAdapter:
    """A minimal adapter written against the protocol alone: two models, one per auth scheme."""

    name = "header-test"
    models = (ModelSpec(path="test/goog"), ModelSpec(path="test/bearer"))
    asynchronous = False
    route = "test"
    image_params: dict[str, str] = {}

    def build_request(
        self, model_path: str, prompt: str, params: Mapping[str, object]
    ) -> PreparedRequest:
        auth = "x-goog-api-key" if model_path == "test/goog" else "bearer"
        return PreparedRequest(method="POST", path=f"/{model_path}", json={"p": prompt}, auth=auth)

    def parse(self, body: Any) -> Parsed:
        return Parsed(images=(RawImage(data=base64.b64decode(body["png"])),))

    def parse_task(self, body: Any) -> TaskState:
        raise NotImplementedError

    def task_path(self, task_id: str) -> str:
        raise NotImplementedError

    def describe(self, model_path: str) -> ModelInfo:
        return ModelInfo(name=model_path, path=model_path, family=self.name)


async def test_the_adapter_chooses_how_the_key_is_sent() -> None:
    """PreparedRequest.auth decides the header: Bearer, or x-goog-api-key and no Authorization."""
    seen: dict[str, dict[str, str]] = {}
    png = b"\x89PNG\r\n\x1a\n" + bytes(32)

    async def handler(request: web.Request) -> web.Response:
        seen[request.path] = {k.lower(): v for k, v in request.headers.items()}
        return web.json_response({"png": base64.b64encode(png).decode()})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    registry = Registry(load_entry_points=False)
    registry.register(HeaderAdapter())
    try:
        async with Client(
            api_key="k-123", base_url=f"http://{host}:{port}", registry=registry
        ) as c:
            goog = await c.generate(ModelName("test/goog"), "a cat")
            bearer = await c.generate(ModelName("test/bearer"), "a cat")
    finally:
        await runner.cleanup()
    assert goog.image.data == png
    assert bearer.image.mime_type == "image/png"
    assert seen["/test/goog"]["x-goog-api-key"] == "k-123"
    assert "authorization" not in seen["/test/goog"]
    assert seen["/test/bearer"]["authorization"] == "Bearer k-123"
    assert "x-goog-api-key" not in seen["/test/bearer"]
    assert seen["/test/bearer"]["user-agent"] == f"aihubmix-async/{__version__}"
