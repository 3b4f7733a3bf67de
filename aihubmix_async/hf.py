"""Hugging Face ``datasets`` integration (the ``datasets`` extra): an async function for
``Dataset.map(batched=True)`` that generates an image per prompt. Importing this module imports
``datasets``; the core package never does.

.. code-block:: python

    from datasets import Dataset
    from aihubmix_async.hf import generate_images

    prompts = Dataset.from_dict({"id": ["fox"], "prompt": ["a red fox"]})
    rows = generate_images(prompts, model="gpt-image-1", concurrency=16)
    rows.push_to_hub(...)  # or rows.to_parquet(...)

``datasets`` runs an async map function on an event loop of its own (a new one per ``map``
call, and per process with ``num_proc``), with up to a thousand batches in flight. The
:class:`ImageMap` keeps one :class:`Client` per event loop, bounded by ``concurrency``, and
closes them when the map ends (:func:`generate_images` does it for you; with the class
directly, use it as a context manager). With ``num_proc=N`` each process has its own client,
so ``concurrency`` and ``rpm`` apply per process: divide them by N.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import datasets

from ._client import Client
from ._errors import ConfigurationError, InvalidRequestError
from ._rows import COLUMNS, Gate, check_model_params, generate_columns

__all__ = ["COLUMNS", "FEATURES", "ImageMap", "generate_images"]

#: The ``datasets`` features of the output rows: ``image`` is an ``Image`` (bytes inside).
FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "model": datasets.Value("string"),
        "params": datasets.Value("string"),
        "image": datasets.Image(),
        "mime_type": datasets.Value("string"),
        "request_id": datasets.Value("string"),
        "usage": datasets.Value("string"),
        "cost": datasets.Value("float64"),
        "attempts": datasets.Value("int64"),
        "elapsed": datasets.Value("float64"),
        "error_type": datasets.Value("string"),
        "error_message": datasets.Value("string"),
    }
)
assert tuple(FEATURES) == COLUMNS  # noqa: S101 - one list of names, two spellings


class ImageMap:
    """The map function's owner: ``with ImageMap(model) as generate: ds.map(generate,
    batched=True, remove_columns=ds.column_names, features=FEATURES)``. Input columns
    ``prompt``, optional ``id``, ``model`` and ``params`` (JSON text); output rows of
    :data:`COLUMNS`, one per image or one per failed row.

    The key is read from ``AIHUBMIX_API_KEY`` when a client opens; ``client_options`` go to
    :class:`Client` (``base_url``, ``timeout``, ``retry``, ``poll``...). Close it after the map
    (leave the ``with`` block, or call :meth:`close`): the clients of finished maps are closed
    then, on their own loops.
    """

    def __init__(
        self,
        model: str,
        *,
        concurrency: int = 16,
        rpm: float | None = None,
        client_options: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> None:
        check_model_params(model, params)
        if {"api_key", "session"} & set(client_options or {}):
            raise ConfigurationError(
                "the key is read from AIHUBMIX_API_KEY when a client opens; pass neither"
                " api_key nor session in client_options"
            )
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidRequestError(
                f"concurrency must be an integer >= 1, got {concurrency!r}", field="concurrency"
            )
        self._model = model
        self._concurrency = concurrency
        self._rpm = rpm
        self._params = params
        self._options = dict(client_options or {})
        self._clients: dict[asyncio.AbstractEventLoop, tuple[Client, Gate]] = {}
        Client(api_key="check", rpm=rpm, **self._options)  # refuse bad options up front

    def __getstate__(self) -> dict[str, Any]:
        # Pickled into `num_proc` workers and hashed for the cache fingerprint: no clients.
        return {**self.__dict__, "_clients": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _client(self) -> tuple[Client, Gate]:
        loop = asyncio.get_running_loop()
        opened = self._clients.get(loop)
        if opened is None:
            # A new loop means an earlier map (or shard) in this process has ended.
            self._close_idle()
            client = Client(max_concurrency=self._concurrency, rpm=self._rpm, **self._options)
            opened = self._clients[loop] = (client, Gate(self._concurrency))
        return opened

    async def generate(self, batch: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
        """The map function (a coroutine function, which ``datasets`` needs to see)."""
        client, gate = self._client()  # options were checked in __init__: this opens
        return await generate_columns(
            client, batch, model=self._model, params=self._params,
            concurrency=self._concurrency, gate=gate,
        )  # fmt: skip

    def _close_idle(self) -> None:
        for loop in [loop for loop in self._clients if not loop.is_running()]:
            _close_on(loop, self._clients.pop(loop)[0])

    def close(self) -> None:
        """Close the clients whose maps have ended (every one, once ``map`` returned)."""
        self._close_idle()

    def __enter__(self) -> Callable[[Mapping[str, list[Any]]], Awaitable[dict[str, list[Any]]]]:
        return self.generate

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _close_on(loop: asyncio.AbstractEventLoop, client: Client) -> None:
    """Close ``client`` on the idle ``loop`` it was opened on, then the loop itself (``datasets``
    leaves its loops open). Another loop may be running in this thread, so use a helper thread.
    """
    if loop.is_closed():
        return

    def run() -> None:
        with contextlib.suppress(Exception):
            loop.run_until_complete(client.aclose())
        loop.close()

    worker = threading.Thread(target=run, name="aihubmix-close")
    worker.start()
    worker.join()


def generate_images(
    ds: datasets.Dataset,
    *,
    model: str,
    concurrency: int = 16,
    rpm: float | None = None,
    batch_size: int | None = None,
    num_proc: int | None = None,
    client_options: Mapping[str, Any] | None = None,
    **params: Any,
) -> datasets.Dataset:
    """A dataset of :data:`COLUMNS` rows for every row of ``ds``; clients closed at the end.

    Parameters are checked before anything is sent. ``num_proc`` processes each run their
    own client: ``concurrency`` and ``rpm`` apply per process.
    """
    with ImageMap(
        model, concurrency=concurrency, rpm=rpm, client_options=client_options, **params
    ) as generate:
        return ds.map(
            generate,
            batched=True,
            batch_size=batch_size or concurrency,
            remove_columns=ds.column_names,
            features=FEATURES,
            num_proc=num_proc,
            desc=f"Generating images with {model}",
        )
