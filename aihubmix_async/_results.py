"""What a generation returns: its images (and their types), token usage, cost and the
:class:`ImageResult` itself. Re-exported by :mod:`._models` with the other public values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread
import attrs

from ._files import save_into
from ._imageinfo import ImageView, images_html
from ._provenance import LazyProvenance, embed
from ._types import JSONValue

__all__ = [
    "Cost",
    "GeneratedImage",
    "ImageResult",
    "Usage",
    "extension_for",
    "image_type",
    "sniff_mime_type",
]

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


_NATIVE = ("image/png", "image/jpeg")  # shown by notebooks from _repr_png_/_repr_jpeg_


def image_type(data: bytes) -> str | None:
    """The image type the magic bytes prove (PNG, JPEG, WebP, GIF), else ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def sniff_mime_type(data: bytes, fallback: str | None = None) -> str:
    """The image type by its magic bytes; the server's claim only when the bytes don't say
    (for display only: whether bytes *are* an image is :func:`image_type`'s call).
    """
    proven = image_type(data)
    if proven is not None:
        return proven
    if fallback:
        fallback = fallback.lower()
        return fallback if "/" in fallback else f"image/{'jpeg' if fallback == 'jpg' else fallback}"
    return "application/octet-stream"


def extension_for(mime_type: str) -> str:
    """File extension (with the dot) for a MIME type; ``.bin`` when unknown."""
    return _EXTENSIONS.get(mime_type, ".bin")


def _repr_data(data: bytes | None) -> str:
    return "None" if data is None else f"<{len(data)} bytes>"


@attrs.frozen(kw_only=True)
class GeneratedImage(ImageView):
    """One image. ``data`` is ``None`` when it was not downloaded (``download=False``): then
    only ``url`` is set, and ``mime_type`` is the server's claim (or a guess from the URL).
    """

    data: bytes | None = attrs.field(repr=_repr_data)
    mime_type: str
    url: str | None = None
    #: What :meth:`save` writes into the file's metadata: prompt, model, parameters, request
    #: id (set on the images of a generation's :class:`ImageResult`).
    provenance: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def extension(self) -> str:
        """File extension for :attr:`mime_type`, e.g. ``.png``."""
        return extension_for(self.mime_type)

    async def save(self, path: str | os.PathLike[str], *, provenance: bool = True) -> Path:
        """Write the image atomically (temporary name, then rename) in a worker thread.

        A directory path gets a file name chosen by content type. Returns the written path.
        With ``provenance`` (the default) PNG, JPEG and WebP files carry :attr:`provenance` in
        their metadata (text chunks, COM/XMP, XMP), the pixels untouched.
        """
        if self.data is None:
            raise ValueError("image was not downloaded (download=False); nothing to save")
        name = f"image{self.extension}"
        data = embed(self.data, self.provenance) if provenance else self.data
        return await anyio.to_thread.run_sync(save_into, Path(path), data, name)


@attrs.frozen(kw_only=True)
class Usage:
    """Token usage as reported by the server (gpt-image models)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None


@attrs.frozen(kw_only=True)
class Cost:
    """What a generation cost (or will cost), in US dollars, and where the figure comes from.

    ``basis`` is ``"tokens"`` (the server's token usage times the token prices) or
    ``"per image"`` (an estimate: images times the model's price per image). ``source`` says
    which prices: ``"snapshot YYYY-MM-DD"`` (shipped with the package), ``"catalogue"`` (the
    live ``/api/v1/models``) or ``"override"`` (the caller's own).
    """

    amount: float
    source: str
    basis: str = "per image"


@attrs.frozen(kw_only=True)
class ImageResult:
    """The result of one generation.

    ``raw`` is the parsed response body, except that inline base64 images are replaced by a
    short marker once decoded into :attr:`images` (so a result does not hold them twice).
    """

    model: str
    images: tuple[GeneratedImage, ...]
    usage: Usage | None = None
    request_id: str | None = None
    task_id: str | None = None
    raw: JSONValue = attrs.field(default=None, repr=False, eq=False)
    #: The prompt and parameters sent; given, they become the images' :attr:`provenance`.
    prompt: str | None = attrs.field(default=None, repr=False, eq=False)
    params: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.prompt is None:
            return
        fields = LazyProvenance(
            prompt=self.prompt, model=self.model, params=self.params,
            request_id=self.request_id, task_id=self.task_id,
        )  # fmt: skip
        # Fresh images (no provenance yet: the pipeline's, one object each) get it in place,
        # which costs a fraction of a copy on the hot path; any other image is copied.
        if len(self.images) == 1:  # the common case: no list, no new tuple
            image = self.images[0]
            if type(image.provenance) is dict and not image.provenance:
                object.__setattr__(image, "provenance", fields)
                return
        images = []
        for image in self.images:
            if type(image.provenance) is dict and not image.provenance:
                object.__setattr__(image, "provenance", fields)
            else:
                image = attrs.evolve(image, provenance=fields)  # noqa: PLW2901
            images.append(image)
        object.__setattr__(self, "images", tuple(images))  # frozen: set once, while being built

    #: What this generation cost, when the model has a price (see :class:`Cost`).
    cost: Cost | None = None

    @property
    def image(self) -> GeneratedImage:
        """The first image (every successful result has at least one)."""
        return self.images[0]

    def without_provenance(self) -> ImageResult:
        """A copy whose images :meth:`GeneratedImage.save` writes as they came (no metadata)."""
        images = tuple(attrs.evolve(image, provenance={}) for image in self.images)
        return attrs.evolve(self, images=images, prompt=None)

    def _repr_png_(self) -> bytes | None:
        return self.images[0]._repr_png_() if len(self.images) == 1 else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.images[0]._repr_jpeg_() if len(self.images) == 1 else None

    def _repr_html_(self) -> str | None:
        shown = [(i.data, i.mime_type) for i in self.images if i.data is not None]
        if not shown or (len(self.images) == 1 and self.images[0].mime_type in _NATIVE):
            return None
        return images_html(shown, f"{self.model} · {len(shown)} image(s)")
