"""The typed surface stays true: generated from the specs, in step with the implementation,
and the README's code passes ``mypy --strict`` as written.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

import aihubmix_async as ah
from aihubmix_async import _typed, _typed_gen, _typed_models, _typed_params
from aihubmix_async._blocking import BlockingClient
from aihubmix_async._client import Client

ROOT = Path(__file__).parent.parent


def test_generated_modules_match_the_parameter_specs(capsys: pytest.CaptureFixture[str]) -> None:
    """The committed Literal/TypedDict modules are what the generator writes from the specs."""
    assert _typed_gen.main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_the_generator_check_reports_a_stale_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module that drifted from its specs fails the check, naming it and the fix."""
    renderers = dict(_typed_gen.RENDERERS)
    renderers["_typed_params.py"] = lambda: "drifted\n"
    monkeypatch.setattr(_typed_gen, "RENDERERS", renderers)
    assert _typed_gen.main(["--check"]) == 1
    assert "_typed_params.py" in capsys.readouterr().err


def test_every_registered_name_is_a_known_model() -> None:
    """Each built-in path and alias has a Literal overload; nothing else is claimed."""
    names = {name for info in ah.Registry.default().models() for name in (info.path, *info.aliases)}
    literals = {
        arg for alias in typing.get_args(_typed_models.KnownModel) for arg in typing.get_args(alias)
    }
    assert literals == names


def test_typed_params_name_exactly_the_spec_fields() -> None:
    """A family's TypedDict has the keys its parameter class declares, required ones required."""
    gpt = _typed_params.GptImageParams
    assert set(gpt.__annotations__) == {f.name for f in ah.Registry.default().models()[0].params}
    edit = _typed_params.QwenImageEditParams.__annotations__
    assert [k for k, ref in edit.items() if ref.__forward_arg__.startswith("Required[")] == [
        "image"
    ]
    assert "aspect_ratio" not in _typed_params.DallE3Params.__annotations__


@pytest.mark.parametrize(
    ("options", "implementation", "skip"),
    [
        (_typed.GenerateOptions, Client._generate, {"self", "model", "prompt", "params"}),
        (_typed.BatchOptions, Client._batch, {"self", "items", "model", "params"}),
    ],
)
def test_typed_options_match_the_implementation(
    options: type, implementation: object, skip: set[str]
) -> None:
    """The overloads' verb options are the implementation's keyword options, same types."""
    assert callable(implementation)
    declared = {
        name: param.annotation
        for name, param in inspect.signature(implementation).parameters.items()
        if name not in skip
    }
    typed = {key: ref.__forward_arg__ for key, ref in options.__annotations__.items()}
    assert typed == declared


def test_the_public_verbs_are_the_typed_overloads() -> None:
    """Client and BlockingClient expose the generated overloads, the fallback last."""
    for cls in (Client, BlockingClient):
        for verb in ("generate", "batch"):
            overloads = typing.get_overloads(getattr(cls, verb))
            assert len(overloads) == len(_typed_gen.families()) + 1
            fallback = inspect.signature(overloads[-1]).parameters["model"].annotation
            assert fallback.startswith("ModelName")


def readme_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def as_module(code: str) -> str:
    """A snippet as a checkable module: names the prose assumes are imported, and a snippet
    with a top-level ``await`` is the body of a coroutine.
    """
    prelude = "from pathlib import Path\nfrom aihubmix_async import *  # noqa: F403\n"
    try:
        compile(code, "<snippet>", "exec", flags=0, dont_inherit=True)
    except SyntaxError:
        body = textwrap.indent(code, "    ")
        return f"{prelude}\n\nasync def snippet(client: Client) -> None:\n{body}"
    return prelude + code


@pytest.mark.slow
def test_readme_snippets_pass_mypy_strict(tmp_path: Path) -> None:
    """Every Python block of the README type-checks under ``mypy --strict`` as written."""
    # datasets ships no type information: its snippets are run by the scale tests instead.
    untyped = ("datasets.", "from datasets import")
    snippets = [s for s in readme_snippets() if not any(u in s for u in untyped)]
    assert len(snippets) >= 5
    for number, code in enumerate(snippets):
        (tmp_path / f"snippet_{number}.py").write_text(as_module(code))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file=",
         *sorted(str(p) for p in tmp_path.glob("snippet_*.py"))],
        capture_output=True, check=False, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
