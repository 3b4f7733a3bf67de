"""Ray Data: a dataset of images from a pool of actors; errors are rows; a rerun does the rest.

python examples/ray_generate.py out/   # uses AIHUBMIX_API_KEY, or a local sandbox if unset

Each run writes one Parquet folder (out/run-1, out/run-2, ...) and generates only the ids that
no earlier run under out/ finished: run it again after a failure or a crash.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import ray
import ray.data
from local_endpoint import endpoint  # type: ignore[import-not-found, unused-ignore]

from aihubmix_async.ray import generate_images

PROMPTS = [{"id": f"{i:04d}", "prompt": f"a lighthouse at dawn, study {i}"} for i in range(24)]


def run(out: Path) -> tuple[int, int]:
    """Generate what ``out`` does not hold yet; returns (images, failures) of this run."""
    run_dir = out / f"run-{len(list(out.glob('run-*'))) + 1}"
    rows = generate_images(
        ray.data.from_items(PROMPTS),
        model="gpt-image-1",
        actors=2,
        concurrency_per_actor=8,
        rpm=600,  # the key's limit, split across the actors
        skip_done=out,  # ids already generated under out/ are not sent again
        size="1024x1024",
    )
    rows.write_parquet(str(run_dir))  # one output: Ray Data is lazy, a second one pays twice
    if not run_dir.exists():  # nothing was left to generate
        return 0, 0
    written = ray.data.read_parquet(str(run_dir)).select_columns(["error_type"]).take_all()
    failures = sum(row["error_type"] is not None for row in written)
    return len(written) - failures, failures


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "ray-out")
    with endpoint():
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        try:
            images, failures = run(out)
        finally:
            ray.shutdown()
    print(f"{images} images, {failures} failures (rerun to retry them)")


if __name__ == "__main__":
    main()
