"""Google Gemini image models ("Nano Banana") — reference §11.

Excluded from predictions: ``POST /gemini/v1beta/models/<model>:generateContent`` with the key
in ``x-goog-api-key``, body ``{"contents": [{"parts": [{"text": prompt}]}], "generationConfig":
{"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio", "imageSize"}}}``.
Images come back as ``candidates[].content.parts[].inlineData.{mimeType, data}``; text parts,
thought parts and the very large ``thoughtSignature`` are skipped.
"""

from __future__ import annotations

import attrs

from .._errors import ResponseFormatError
from .._models import Usage
from .._types import JSONValue
from ._base import Adapter, Answer, ModelSpec, Parsed, param
from ._readers import decode_base64_image

__all__ = ["GeminiImageAdapter", "GeminiImageParams"]

_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")


@attrs.frozen(kw_only=True)
class GeminiImageParams:
    aspect_ratio: str | None = param(str, choices=_RATIOS, wire="imageConfig.aspectRatio")


@attrs.frozen(kw_only=True)
class GeminiProImageParams(GeminiImageParams):
    image_size: str | None = param(str, choices=("1K", "2K", "4K"), wire="imageConfig.imageSize")


class GeminiImageAdapter(Adapter):
    name = "google-gemini-image"
    models = (
        ModelSpec(path="gemini-2.5-flash-image", aliases=("nano-banana",)),
        ModelSpec(path="gemini-2.5-flash-image-preview"),
        ModelSpec(
            path="gemini-3-pro-image-preview",
            aliases=("nano-banana-pro",),
            params=GeminiProImageParams,
        ),
    )
    params_class = GeminiImageParams
    route = "gemini"
    answer = Answer(shapes=("candidates[].content.parts[].inlineData",), usage_per_image=1290)

    def parse(self, body: JSONValue) -> Parsed:
        expected = self.expects
        if not isinstance(body, dict):
            raise ResponseFormatError("response is not a JSON object", expected=expected)
        images = []
        for candidate in _dicts(body.get("candidates")):
            content = candidate.get("content")
            for part in _dicts(content.get("parts") if isinstance(content, dict) else None):
                inline = part.get("inlineData") or part.get("inline_data")
                if part.get("thought") is True or not isinstance(inline, dict):
                    continue
                data, mime = inline.get("data"), inline.get("mimeType") or inline.get("mime_type")
                if isinstance(data, str) and data:
                    images.append(decode_base64_image(data, _str(mime), expected))
        if not images:
            feedback = body.get("promptFeedback")
            reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
            reasons = [c.get("finishReason") for c in _dicts(body.get("candidates"))]
            why = reason or ", ".join(str(r) for r in reasons if r) or "no image part"
            raise ResponseFormatError(f"response contains no image ({why})", expected=expected)
        return Parsed(images=tuple(images), usage=_usage(body.get("usageMetadata")))


def _dicts(value: JSONValue) -> list[dict[str, JSONValue]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: JSONValue) -> str | None:
    return value if isinstance(value, str) else None


def _usage(meta: JSONValue) -> Usage | None:
    if not isinstance(meta, dict):
        return None

    def count(key: str) -> int | None:
        value = meta.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return Usage(
        input_tokens=count("promptTokenCount"),
        output_tokens=count("candidatesTokenCount"),
        total_tokens=count("totalTokenCount"),
    )
