"""A real notebook, executed by a Jupyter kernel, shows a generated image as a picture."""

from __future__ import annotations

import base64
import io

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

from PIL import Image  # noqa: E402

from aihubmix_async.sandbox._images import colours  # noqa: E402

SETUP = """\
from aihubmix_async import Client
from aihubmix_async.sandbox import serve

async with serve() as sandbox:
    async with Client(api_key=sandbox.api_key, base_url=sandbox.base_url) as client:
        result = await client.generate("ideogram/V3", "a fox in snow", seed=7)
        pair = await client.generate("gpt-image-1", "two kites", n=2)
"""


@pytest.mark.slow
def test_a_notebook_displays_generated_images() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_code_cell("result"),
        nbformat.v4.new_code_cell("result.image"),
        nbformat.v4.new_code_cell("pair"),
        nbformat.v4.new_code_cell("(result.image.width, result.image.height)"),
    ]
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = [cell.outputs for cell in notebook.cells]
    assert outputs[0] == []  # no error, nothing printed
    for shown in (outputs[1], outputs[2]):
        (output,) = shown
        data = base64.b64decode(output["data"]["image/png"])
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.size == (64, 64)
            assert picture.convert("RGB").getpixel((0, 0)) == colours("a fox in snow", 7)[0]
    (pair,) = outputs[3]
    assert "image/png" not in pair["data"]
    assert pair["data"]["text/html"].count("<img ") == 2
    (size,) = outputs[4]
    assert size["data"]["text/plain"] == "(64, 64)"
