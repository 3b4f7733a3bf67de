"""OpenAI image models: gpt-image-1 / -1-mini / -1.5 and dall-e-3 (reference §2).

The documented paths moved from the ``opanai/`` typo to ``openai/`` in Dec 2025; both are served,
a path the user writes is sent as written, and the short names resolve to ``openai/``.
Responses: the object form ``output.b64_json[].bytesBase64`` with ``usage`` (captured live), or
the list form ``output[]`` of ``{b64_json}`` / ``{url}`` (Dify) — both accepted.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from .._errors import InvalidRequestError
from ._base import Adapter, Answer, ModelSpec, PreparedRequest, RawImage, param
from ._spec import ROUTES

__all__ = ["DallE3Adapter", "DallE3Params", "GptImageAdapter", "GptImageParams"]


@attrs.frozen(kw_only=True)
class GptImageParams:
    size: str | None = param(str, choices=("1024x1024", "1024x1536", "1536x1024", "auto"))
    n: int | None = param(int, minimum=1, maximum=10, description="images per request")
    quality: str | None = param(str, choices=("low", "medium", "high", "auto"))
    moderation: str | None = param(
        str, choices=("auto", "low"), description="not allowed with an input image"
    )
    background: str | None = param(str, choices=("transparent", "opaque", "auto"))
    output_format: str | None = param(str, choices=("png", "jpeg", "webp"))
    input_fidelity: str | None = param(str, choices=("high", "low"), description="edits only")
    image: str | None = param(str, description="reference image (URL, or a local image to edit)")

    def __attrs_post_init__(self) -> None:
        if self.image is not None and self.moderation is not None:
            raise InvalidRequestError(
                "parameter 'moderation' is not allowed together with an input 'image'",
                field="moderation",
            )
        if self.input_fidelity is not None and self.image is None:
            raise InvalidRequestError(
                "parameter 'input_fidelity' only applies to edits (give an 'image')",
                field="input_fidelity",
            )


EDITS = "images/edits"


class GptImageAdapter(Adapter):
    """A URL ``image`` is sent on the predictions route (as documented); a local image (bytes,
    file, path, data URI) is uploaded to the OpenAI-compatible ``/v1/images/edits`` route as
    multipart form data, the documented way to send files. Its answer is ``data[].b64_json``.
    """

    name = "openai-gpt-image"
    models = (
        ModelSpec(path="openai/gpt-image-1", aliases=("gpt-image-1",)),
        ModelSpec(path="opanai/gpt-image-1"),
        ModelSpec(path="openai/gpt-image-1-mini", aliases=("gpt-image-1-mini",)),
        ModelSpec(path="opanai/gpt-image-1-mini"),
        ModelSpec(path="openai/gpt-image-1.5", aliases=("gpt-image-1.5",)),
    )
    params_class = GptImageParams
    image_params = {"image": "file"}
    other_routes = {
        EDITS: frozenset(
            ("image", "size", "n", "quality", "background", "output_format", "input_fidelity")
        )
    }
    answer = Answer(
        shapes=("output.b64_json[].bytesBase64", "output[].b64_json", "data[].b64_json"),
        format_param="output_format",
        count_params=("n",),
        sent_count="n",
        usage_per_image=1056,
    )

    def build_request(
        self, model_path: str, prompt: str, params: Mapping[str, object]
    ) -> PreparedRequest:
        image = params.get("image")
        if not isinstance(image, RawImage) or image.data is None:
            return super().build_request(model_path, prompt, params)
        # Validated as usual (the upload stands in for the URL), sent as a form to the edits
        # route with the options that route documents.
        fields = self.fields(model_path, prompt, {**params, "image": "upload"})
        allowed = self.other_routes[EDITS]
        form = {k: v for k, v in fields.items() if k in allowed and k != "image"}
        return ROUTES[EDITS].build(model_path, prompt, {**form, "image": image})


@attrs.frozen(kw_only=True)
class DallE3Params:
    size: str | None = param(str, choices=("1024x1024", "1792x1024", "1024x1792"))
    n: int | None = param(int, minimum=1, maximum=1, description="dall-e-3 makes one image")
    quality: str | None = param(str, choices=("standard", "hd"))
    style: str | None = param(str, choices=("vivid", "natural"))


class DallE3Adapter(Adapter):
    name = "openai-dall-e"
    models = (
        ModelSpec(path="openai/dall-e-3", aliases=("dall-e-3",)),
        ModelSpec(path="opanai/dall-e-3"),
    )
    params_class = DallE3Params
    answer = Answer(
        shapes=("output[].url", "output[].b64_json", "output.b64_json[].bytesBase64"),
        count_params=("n",),
        sent_count="n",
    )
