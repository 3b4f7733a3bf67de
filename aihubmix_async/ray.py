"""Ray Data integration (the ``ray`` extra): generate images for a dataset of prompts on a pool
of actors, one :class:`Client` per actor. Importing this module imports Ray; the core package
never does.

.. code-block:: python

    import ray
    from aihubmix_async.ray import generate_images

    prompts = ray.data.from_items([{"id": "fox", "prompt": "a red fox"}])
    rows = generate_images(prompts, model="gpt-image-1", actors=2, concurrency_per_actor=16)
    rows.write_parquet("out/run-1")  # one output: images and errors side by side

The key is read from ``AIHUBMIX_API_KEY`` inside each actor (set it in the workers'
environment); it is never a constructor argument, which Ray would keep in its object store.
Every input row ends as output rows (:data:`COLUMNS`), one per image or one carrying
``error_type`` and ``error_message``: an error never aborts the job. ``skip_done`` reads an
earlier output and generates only the ids that are missing there or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray
import ray.data
from ray.data.dataset import MaterializedDataset

from ._client import Client
from ._errors import AIHubMixError, ConfigurationError, InvalidRequestError
from ._rows import (
    COLUMNS,
    Gate,
    check_model_params,
    failed_columns,
    generate_columns,
    requests_from_columns,
)

__all__ = ["COLUMNS", "SCHEMA", "ImageGenerator", "done_ids", "generate_images"]

#: The Arrow schema of the output rows.
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("model", pa.string()),
        ("params", pa.string()),
        ("image", pa.binary()),
        ("mime_type", pa.string()),
        ("request_id", pa.string()),
        ("usage", pa.string()),
        ("cost", pa.float64()),
        ("attempts", pa.int64()),
        ("elapsed", pa.float64()),
        ("error_type", pa.string()),
        ("error_message", pa.string()),
    ]
)
assert tuple(SCHEMA.names) == COLUMNS  # noqa: S101 - one list of names, two spellings

Source = ray.data.Dataset | str | os.PathLike[str]


class ImageGenerator:
    """A ``map_batches`` callable class: ``ds.map_batches(ImageGenerator, batch_format="pyarrow",
    fn_constructor_kwargs={"model": ...}, compute=ray.data.ActorPoolStrategy(size=2))``.

    Each actor opens one :class:`Client` lazily on its event loop (Ray runs every call of an
    async UDF on one loop per actor) and closes it when the actor shuts down. ``concurrency``
    bounds the actor's requests in flight and ``rpm`` its generations per minute (the
    :func:`generate_images` helper splits a key-wide rpm across actors). ``client_options`` go
    to :class:`Client` (``timeout``, ``retry``, ``poll``...), never the key.
    """

    def __init__(
        self,
        model: str,
        *,
        concurrency: int = 16,
        rpm: float | None = None,
        params: Mapping[str, Any] | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        options = dict(client_options or {})
        if "api_key" in options or "session" in options:
            raise ConfigurationError(
                "the key is read from AIHUBMIX_API_KEY inside each worker; pass neither"
                " api_key nor session in client_options"
            )
        self._model = model
        self._concurrency = concurrency
        self._rpm = rpm
        self._params = dict(params or {})
        self._options = options
        self._client: Client | None = None
        self._gate: Gate | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> tuple[Client, Gate]:
        if self._client is None or self._gate is None:
            self._loop = asyncio.get_running_loop()
            self._client = Client(max_concurrency=self._concurrency, rpm=self._rpm, **self._options)
            # Shared by the calls the actor runs at once: after a 401 none takes another row.
            # No shared slot limit here: it made the actor's batches finish together, leaving
            # the pool idle between them (the client's limit holds the actor's requests).
            self._gate = Gate(None)
        return self._client, self._gate

    async def __call__(self, batch: pa.Table) -> pa.Table:
        columns = batch.to_pydict()
        try:
            client, gate = self._open()
        except AIHubMixError as exc:  # e.g. a bad AIHUBMIX_BASE_URL here: every row says so
            columns = failed_columns(columns, self._model, self._params, exc)
        else:
            columns = await generate_columns(
                client, columns, model=self._model, params=self._params,
                concurrency=self._concurrency, gate=gate,
            )  # fmt: skip
        return pa.Table.from_pydict(columns, schema=SCHEMA)

    def close(self) -> None:
        """Close the actor's client on its own loop (Ray calls ``__del__`` at shutdown)."""
        client, loop = getattr(self, "_client", None), getattr(self, "_loop", None)
        self._client = None
        if client is None or loop is None or loop.is_closed():
            return
        if loop.is_running():
            if _loop_thread_is_current(loop):  # cannot wait on the loop from inside it
                loop.create_task(client.aclose())
                return
            future = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
            with contextlib.suppress(Exception):
                future.result(timeout=10)
        else:
            loop.run_until_complete(client.aclose())

    def __del__(self) -> None:
        self.close()


def _loop_thread_is_current(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def done_ids(source: Source | Sequence[Source]) -> pa.Array:
    """The ids with at least one successful row in earlier output(s): materialized datasets, or
    Parquet files or folders (local paths or URIs such as ``s3://``) of :func:`generate_images`
    rows. A location with nothing written yet has no done ids; a file that is not readable
    Parquet (cut short by a crash) is an :class:`InvalidRequestError` naming it.
    """
    sources = [source] if isinstance(source, ray.data.Dataset | str | os.PathLike) else source
    found: set[str] = set()
    for item in sources:
        if isinstance(item, ray.data.Dataset):
            parts = _dataset_parts(item)
        else:
            parts = _parquet_parts(os.fspath(item))
        for part in parts:
            ok = part.filter(pc.is_null(part["error_type"]))
            found.update(ok["id"].to_pylist())
    return pa.array(sorted(found), type=pa.string())


def _dataset_parts(ds: ray.data.Dataset) -> Iterator[pa.Table]:
    if not isinstance(ds, MaterializedDataset) and "ImageGenerator" in repr(ds):
        # Reading it would run it: every image generated, and paid for, again.
        raise InvalidRequestError(
            "skip_done got a lazy dataset that generates images: reading it would generate"
            " (and pay for) them again; pass the path it was written to, or materialize it",
            field="skip_done",
        )
    table = ds.select_columns(["id", "error_type"])
    for batch in table.iter_batches(batch_format="pyarrow", batch_size=65_536):
        yield cast("pa.Table", batch)  # the format asked for


def _parquet_parts(location: str) -> Iterator[pa.Table]:
    if "://" in location:
        filesystem, root = pafs.FileSystem.from_uri(location)
    else:
        filesystem, root = pafs.LocalFileSystem(), str(Path(location).resolve())
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        return  # nothing written there yet: nothing is done
    if info.type == pafs.FileType.File:
        paths = [root]
    else:
        found = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
        paths = sorted(f.path for f in found if f.is_file and f.path.endswith(".parquet"))
    for path in paths:
        try:
            with filesystem.open_input_file(path) as handle:
                table = pq.read_table(handle, columns=["id", "error_type"])
        except (pa.ArrowException, OSError) as exc:
            raise InvalidRequestError(
                f"skip_done: {path} is not a readable Parquet file of generated rows ({exc});"
                " one cut short by a crash holds no finished rows: move it away and rerun",
                field="skip_done",
            ) from exc
        yield table


def _keep_pending(
    ds: ray.data.Dataset, done: pa.Array, model: str, params: Mapping[str, Any]
) -> ray.data.Dataset:
    """``ds`` without the rows whose id is done (ids computed as the generator computes them)."""
    done_ref = ray.put(done)

    def pending(batch: pa.Table) -> pa.Table:
        requests = requests_from_columns(batch.to_pydict(), model, params)
        ids = pa.array([request.id for request, _ in requests], type=pa.string())
        return batch.filter(pc.invert(pc.is_in(ids, value_set=ray.get(done_ref))))

    return ds.map_batches(pending, batch_format="pyarrow")


def _actor_rpm(rpm: float | None, actors: int) -> float | None:
    return None if rpm is None else rpm / actors


def _check_on_driver(
    ds: ray.data.Dataset,
    model: str,
    params: Mapping[str, Any],
    actors: int,
    concurrency: int,
    rpm: float | None,
    client_options: Mapping[str, Any] | None,
) -> None:
    """Refuse what every actor would refuse (each row an error, or the job aborted) up front."""
    check_model_params(model, params)
    for name, value in (("actors", actors), ("concurrency_per_actor", concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequestError(f"{name} must be an integer >= 1, got {value!r}", field=name)
    if rpm is not None and not (isinstance(rpm, int | float) and 0 < rpm < math.inf):
        raise InvalidRequestError(f"rpm must be a positive number, got {rpm!r}", field="rpm")
    options = dict(client_options or {})
    ImageGenerator(model, client_options=options)  # refuses a key or session in the options
    # The actors' client settings, built here once: a bad timeout or an unknown option fails
    # now, not as an error row per prompt (or an aborted job) on every actor.
    Client(api_key="check", max_concurrency=concurrency, rpm=_actor_rpm(rpm, actors), **options)
    schema = ds.schema(fetch_if_missing=False)  # known without running anything, or None
    if schema is not None and "prompt" not in schema.names:
        raise InvalidRequestError(
            f"the input needs a 'prompt' column; it has {', '.join(schema.names)}", field="prompt"
        )


def generate_images(
    ds: ray.data.Dataset,
    *,
    model: str,
    actors: int = 2,
    concurrency_per_actor: int = 16,
    rpm: float | None = None,
    skip_done: Source | Sequence[Source] | None = None,
    batch_size: int | None = None,
    num_cpus: float = 0.5,
    client_options: Mapping[str, Any] | None = None,
    **params: Any,
) -> ray.data.Dataset:
    """Rows of :data:`COLUMNS` for every row of ``ds`` (columns ``prompt``, optional ``id``,
    ``model``, ``params`` as JSON text): lazy, like every Ray Data transform.

    ``actors`` actors each keep ``concurrency_per_actor`` requests in flight; a key-wide
    ``rpm`` is split evenly across them. Parameters are checked here, before any actor starts
    or anything is billed. ``skip_done`` (a dataset, a Parquet path, or a list of them)
    leaves out ids that already have a successful row there; rows without an ``id`` get a
    stable one from model, prompt and parameters. Write the result once (``write_parquet``):
    Ray Data is lazy, so two outputs would generate, and pay for, everything twice.
    """
    _check_on_driver(ds, model, params, actors, concurrency_per_actor, rpm, client_options)
    if skip_done is not None:
        ds = _keep_pending(ds, done_ids(skip_done), model, params)
    return ds.map_batches(
        ImageGenerator,
        fn_constructor_kwargs={
            "model": model,
            "concurrency": concurrency_per_actor,
            "rpm": _actor_rpm(rpm, actors),
            "params": params,
            "client_options": client_options,
        },
        batch_format="pyarrow",
        batch_size=batch_size or concurrency_per_actor,
        # Several batches per actor at once, and the actor runs them at once (a plain actor
        # runs one call at a time: each batch's slowest request idled it, 0.56x the single
        # process); the client's limit still holds each actor to concurrency_per_actor.
        compute=ray.data.ActorPoolStrategy(
            size=actors, max_tasks_in_flight_per_actor=4, max_concurrent_calls_per_actor=4
        ),
        num_cpus=num_cpus,
    )
