"""Hugging Face datasets: a dataset of prompts mapped to a dataset of images, errors as rows.

python examples/hf_generate.py out/   # uses AIHUBMIX_API_KEY, or a local sandbox if unset

The result has an ``image`` column of type ``Image`` beside the shared metadata columns; save it
with ``save_to_disk``, ``to_parquet`` or ``push_to_hub``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from datasets import Dataset
from local_endpoint import endpoint  # type: ignore[import-not-found, unused-ignore]

from aihubmix_async.hf import generate_images

PROMPTS = {
    "id": [f"{i:04d}" for i in range(12)],
    "prompt": [f"a red fox in the snow, study {i}" for i in range(12)],
}


def run(out: Path) -> tuple[int, int]:
    """Generate every prompt into ``out``; returns (images, failures)."""
    rows = generate_images(
        Dataset.from_dict(PROMPTS), model="gpt-image-1", concurrency=8, size="1024x1024"
    )
    rows.save_to_disk(str(out))
    failures = sum(error is not None for error in rows["error_type"])
    return len(rows) - failures, failures


def main() -> None:
    with endpoint():
        images, failures = run(Path(sys.argv[1] if len(sys.argv) > 1 else "hf-out"))
    print(f"{images} images, {failures} failures")


if __name__ == "__main__":
    main()
