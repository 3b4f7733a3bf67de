"""The package's layers, read from the source: who may import whom, and no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import aihubmix_async

PACKAGE = Path(aihubmix_async.__file__).parent
NAME = "aihubmix_async"

#: Modules that talk HTTP, run generations or batches, or read inputs: providers stay pure.
ENGINE = {
    "_client", "_transport", "_batch", "_batch_input", "_inputs", "_exchange", "_answers",
    "_generation", "_blocking",
}  # fmt: skip
#: Known and being removed elsewhere (the provider-spec rewrite): the gpt-image edits adapter
#: checks for ImageInput. Listed, so that no new edge can appear unnoticed.


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([NAME, *parts])


def imports_of(path: Path) -> set[str]:
    """Package modules ``path`` imports (at any level, TYPE_CHECKING blocks included)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # `from . import _json` imports the submodule itself
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == NAME or name.startswith(NAME + ".")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path) & set(modules) - {name} for name, path in modules.items()}


def short(module: str) -> str:
    return module.removeprefix(NAME + ".")


def test_the_import_graph_has_no_cycles() -> None:
    """Every module can be understood from the ones below it (packages' __init__ aside)."""
    # A package's __init__ re-exports its children, so a child importing its own package
    # (or the root package) is not a layering edge.
    edges = {
        name: {dep for dep in deps if not name.startswith(dep + ".")}
        for name, deps in graph().items()
    }
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([short(n) for n in stack[stack.index(dep) :]] + [short(dep)])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_providers_import_nothing_from_the_engine() -> None:
    """Adapters are pure: no client, transport, batch, exchange, generation or input code."""
    offenders = {
        (short(name), short(dep))
        for name, deps in graph().items()
        if short(name).startswith("providers")
        for dep in deps
        if short(dep) in ENGINE
    }
    assert offenders == set()


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("_batch", {"_client", "_blocking"}),
        ("_batch_input", {"_client", "_blocking", "_generation", "_exchange", "_transport"}),
        ("_generation", {"_client", "_batch", "_blocking"}),
        ("_exchange", {"_client", "_batch", "_generation", "_registry", "providers"}),
        ("_answers", {"_client", "_batch", "_generation", "_exchange", "_registry", "providers"}),
        ("_transport", {"_client", "_batch", "_generation", "_exchange"}),
        ("_models", {"_client", "_batch", "_generation", "_exchange", "_transport"}),
        ("_results", {"_client", "_batch", "_generation", "_exchange", "_transport", "_models"}),
    ],
)
def test_lower_layers_do_not_reach_up(module: str, forbidden: set[str]) -> None:
    deps = {short(d).split(".")[0] for d in graph()[f"{NAME}.{module}"]}
    assert deps & forbidden == set()


def test_the_graph_reader_sees_relative_imports() -> None:
    """Guard the guard: the reader must find known edges, or the tests above prove nothing."""
    edges = graph()
    assert f"{NAME}._generation" in edges[f"{NAME}._batch"]
    assert f"{NAME}._answers" in edges[f"{NAME}._exchange"]
    assert f"{NAME}._json" in edges[f"{NAME}._answers"]
    assert f"{NAME}._exchange" in edges[f"{NAME}._client"]


#: Heavy optional integrations: only these modules may import them.
OPTIONAL = {"ray": {"ray"}, "datasets": {"hf"}, "pyarrow": {"ray", "hf", "_parquet", "_gallery"}}


def external_imports(path: Path) -> set[str]:
    """Top-level names of the modules ``path`` imports from outside the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_otel_module_imports_opentelemetry() -> None:
    """Tracing is an extra: no core module imports OpenTelemetry, and none imports .otel."""
    importers = {
        short(module_name(path))
        for path in PACKAGE.rglob("*.py")
        if "opentelemetry" in external_imports(path)
    }
    assert importers == {"otel"}
    assert not [name for name, deps in graph().items() if f"{NAME}.otel" in deps]


def test_the_core_never_imports_ray_or_datasets() -> None:
    """`import aihubmix_async` stays light: Ray, datasets and pyarrow only in their modules."""
    offenders = {
        (module_name(path), name)
        for path in PACKAGE.rglob("*.py")
        for name in external_imports(path) & set(OPTIONAL)
        if short(module_name(path)) not in OPTIONAL[name]
    }
    assert offenders == set()
    assert external_imports(PACKAGE / "ray.py") >= {"ray", "pyarrow"}  # the guard sees them
