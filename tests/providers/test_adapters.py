"""Adapters are pure: request building, validation and response parsing, with no server."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from aihubmix_async import InvalidRequestError, Registry, ResponseFormatError, Usage
from aihubmix_async.providers import TaskStatus
from aihubmix_async.providers.baidu import ErnieIragEditAdapter
from aihubmix_async.providers.doubao import DoubaoAdapter
from aihubmix_async.providers.flux import FluxAsyncAdapter, FluxSyncAdapter
from aihubmix_async.providers.ideogram import IdeogramAdapter
from aihubmix_async.providers.imagen import ImagenAdapter
from aihubmix_async.providers.openai import GptImageAdapter
from aihubmix_async.providers.qwen import QwenImageAdapter, QwenImageEditAdapter

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PNG_B64 = base64.b64encode(PNG).decode()
GPT = "openai/gpt-image-1"


def body_of(adapter: Any, model: str, **params: Any) -> dict[str, Any]:
    request = adapter.build_request(model, "a cat", params)
    assert request.method == "POST"
    return request.json  # type: ignore[no-any-return]


def test_predictions_envelope() -> None:
    """Parameters go inside input, unset ones are not sent, the path is the model path."""
    request = GptImageAdapter().build_request(GPT, "a cat", {"size": "1024x1024", "n": 2})
    assert request.path == "/v1/models/openai/gpt-image-1/predictions"
    assert request.json == {"input": {"prompt": "a cat", "size": "1024x1024", "n": 2}}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n": 11}, "n"),
        ({"n": "3"}, "n"),
        ({"n": True}, "n"),
        ({"quality": "ultra"}, "quality"),
        ({"image": "https://x/y.png", "moderation": "low"}, "moderation"),
        ({"input_fidelity": "high"}, "input_fidelity"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_gpt_image_rejects(params: dict[str, Any], field: str) -> None:
    """Bad values, wrong types, spec combinations and unknown names name their field."""
    with pytest.raises(InvalidRequestError) as caught:
        GptImageAdapter().build_request(GPT, "a cat", params)
    assert caught.value.field == field
    assert caught.value.model == GPT


def test_gpt_image_object_form() -> None:
    """output.b64_json[].bytesBase64 with usage is read, with the mime type kept."""
    parsed = GptImageAdapter().parse(
        {
            "output": {"b64_json": [{"bytesBase64": PNG_B64, "mimeType": "png"}], "urls": []},
            "usage": {"input_tokens": 1, "output_tokens": "2", "total_tokens": 3.0},
        }
    )
    assert parsed.images[0].data == PNG
    assert parsed.images[0].mime_type == "png"
    assert parsed.usage == Usage(input_tokens=1, output_tokens=2, total_tokens=3)


def test_gpt_image_list_form_and_urls() -> None:
    """The list form and an object with only urls[] are read too."""
    adapter = GptImageAdapter()
    assert adapter.parse({"output": [{"b64_json": PNG_B64}]}).images[0].data == PNG
    only_urls = adapter.parse({"output": {"b64_json": [], "urls": ["https://cdn.test/a.png"]}})
    assert only_urls.images[0].url == "https://cdn.test/a.png"


def test_data_uri_and_openai_compatible_data() -> None:
    """A data: URI and the OpenAI-compatible data[] list decode to bytes."""
    adapter = FluxSyncAdapter()
    parsed = adapter.parse({"data": [{"b64_json": f"data:image/png;base64,{PNG_B64}"}]})
    assert parsed.images[0].data == PNG
    assert parsed.images[0].mime_type == "image/png"


@pytest.mark.parametrize(
    "body",
    [
        [],
        "output",
        {"output": []},
        {"output": {"b64_json": [], "urls": []}},
        {"output": [{"b64_json": "not base64 !!"}]},
        {"output": [42]},
        {"nothing": "here"},
    ],
)
def test_unparseable_bodies_are_response_format_errors(body: Any) -> None:
    """Anything without a readable image is a ResponseFormatError saying what was expected."""
    with pytest.raises(ResponseFormatError) as caught:
        GptImageAdapter().parse(body)
    assert "b64_json" in caught.value.expected


def test_imagen_count_rules() -> None:
    """Imagen's numberOfImages and sampleCount are aliases (not both); ultra makes one."""
    adapter = ImagenAdapter()
    assert body_of(adapter, "google/imagen-3.0-generate-002", sampleCount=2)["input"] == {
        "prompt": "a cat",
        "sampleCount": 2,
    }
    with pytest.raises(InvalidRequestError, match="not both"):
        body_of(adapter, "google/imagen-3.0-generate-002", sampleCount=2, numberOfImages=2)
    with pytest.raises(InvalidRequestError, match="ultra"):
        body_of(adapter, "google/imagen-4.0-ultra-generate-001", numberOfImages=2)
    with pytest.raises(InvalidRequestError, match="'16:9'"):
        body_of(adapter, "google/imagen-3.0-generate-002", aspectRatio="2:1")


def test_flux_rules() -> None:
    """safety_tolerance <= 2 with an input image; flux-2 caps at 5; raw is flux-2 only."""
    adapter = FluxAsyncAdapter()
    with pytest.raises(InvalidRequestError, match="at most 2"):
        body_of(adapter, "bfl/flux-kontext-max", input_image="https://x/a.png", safety_tolerance=4)
    with pytest.raises(InvalidRequestError, match="between 0 and 5"):
        body_of(adapter, "bfl/flux-2-pro", safety_tolerance=6)
    with pytest.raises(InvalidRequestError, match="flux-2"):
        body_of(adapter, "bfl/flux-kontext-pro", raw=True)
    with pytest.raises(InvalidRequestError, match="both 'width' and 'height'"):
        body_of(adapter, "bfl/flux-kontext-pro", width=1024)
    assert body_of(adapter, "bfl/flux-2-flex", raw=True, seed=7)["input"]["seed"] == 7


def test_flux_submit_and_task_states() -> None:
    """The submit answer yields the task id; poll bodies map to pending/done/failed/moderated."""
    adapter = FluxAsyncAdapter()
    submitted = adapter.parse({"output": [{"taskId": "api.us1.abc", "polling_url": "https://p"}]})
    assert submitted.task_id == "api.us1.abc"
    assert submitted.polling_url == "https://p"
    cases: list[tuple[dict[str, Any], TaskStatus]] = [
        ({"status": "Pending"}, TaskStatus.PENDING),
        ({"status": "Something New"}, TaskStatus.PENDING),
        ({"status": "Ready", "result": {"sample": "https://cdn/x.jpg"}}, TaskStatus.DONE),
        ({"state": "succeeded", "output": ["https://cdn/x.jpg"]}, TaskStatus.DONE),
        ({"task_status": "completed", "output": [{"url": "https://cdn/x"}]}, TaskStatus.DONE),
        ({"output": [{"b64_json": PNG_B64}]}, TaskStatus.DONE),
        ({"status": "Request Moderated"}, TaskStatus.MODERATED),
        ({"status": "Content Moderated"}, TaskStatus.MODERATED),
        ({"status": "Error", "message": "boom"}, TaskStatus.FAILED),
        ({"status": "canceled"}, TaskStatus.FAILED),
    ]
    for body, status in cases:
        assert adapter.parse_task(body).status is status, body
    with pytest.raises(ResponseFormatError, match="no image"):
        adapter.parse_task({"status": "Ready"})


def test_flux_one_step_route() -> None:
    """FLUX-1.1-pro goes to the OpenAI-compatible route with the model in the body."""
    request = FluxSyncAdapter().build_request("FLUX-1.1-pro", "a cat", {"safety_tolerance": 6})
    assert request.path == "/v1/images/generations"
    assert request.json == {"model": "FLUX-1.1-pro", "prompt": "a cat", "safety_tolerance": 6}


def test_ideogram_and_qwen_normalise_notation() -> None:
    """Ideogram ratios become WxH; Qwen sizes written with * become the x form."""
    assert (
        body_of(IdeogramAdapter(), "ideogram/V3", aspect_ratio="16:9")["input"]["aspect_ratio"]
        == "16x9"
    )
    assert (
        body_of(QwenImageAdapter(), "qianfan/qwen-image", size="1024*1024")["input"]["size"]
        == "1024x1024"
    )


def test_edits_require_an_image() -> None:
    """Edit models refuse a request without the image to edit."""
    for adapter, model in (
        (QwenImageEditAdapter(), "qianfan/qwen-image-edit"),
        (ErnieIragEditAdapter(), "qianfan/ernie-irag-edit"),
    ):
        with pytest.raises(InvalidRequestError, match="required"):
            body_of(adapter, model)


def test_doubao_rules() -> None:
    """max_images nests under sequential options; 4-5 has no 1K; streaming is refused."""
    adapter = DoubaoAdapter()
    body = body_of(
        adapter,
        "doubao/doubao-seedream-4-0",
        sequential_image_generation="auto",
        max_images=3,
        image=["https://x/a.png", "https://x/b.png"],
    )["input"]
    assert body["sequential_image_generation_options"] == {"max_images": 3}
    assert "max_images" not in body
    with pytest.raises(InvalidRequestError, match="'2K', '4K'"):
        body_of(adapter, "doubao/doubao-seedream-4-5", size="1K")
    with pytest.raises(InvalidRequestError, match="stream"):
        body_of(adapter, "doubao/doubao-seedream-4-0", stream=True)
    with pytest.raises(InvalidRequestError, match="sequential"):
        body_of(adapter, "doubao/doubao-seedream-4-0", max_images=3)


@pytest.mark.parametrize(
    ("model", "params", "message"),
    [
        (GPT, {"quality": "best"},
         "parameter 'quality' must be one of 'low', 'medium', 'high', 'auto'; got 'best'"),
        (GPT, {"n": "3"}, "parameter 'n' must be an integer, got '3'"),
        (GPT, {"n": 0}, "parameter 'n' must be between 1 and 10; got 0"),
        (GPT, {"qualty": "high"}, "unknown parameter 'qualty'; accepted: size, n, quality,"),
        (GPT, {"qualty": "high"}, "Did you mean 'quality'?"),
        ("qianfan/qwen-image", {"guidance": float("nan")},
         "parameter 'guidance' must be a finite number, got nan"),
        ("bfl/flux-kontext-pro", {"raw": True},
         "parameter 'raw' is only accepted by bfl/flux-2-pro, bfl/flux-2-flex"),
        ("google/imagen-4.0-ultra-generate-001", {"sampleCount": 3},
         "google/imagen-4.0-ultra-generate-001 generates at most 1 image(s) per request; got 3"),
    ],
)  # fmt: skip
def test_parameter_messages_say_what_is_allowed(
    model: str, params: dict[str, Any], message: str
) -> None:
    """Messages built from cattrs' collected errors keep their substance: the allowed values or
    range, the type expected, the nearest known names, the models that take a parameter.
    """
    adapter, path = Registry.default().resolve(model)
    with pytest.raises(InvalidRequestError) as caught:
        adapter.build_request(path, "a cat", params)
    assert message in caught.value.message
    assert caught.value.field == next(iter(params))
    assert caught.value.model == path
