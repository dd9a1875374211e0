"""The import graph of shared/ and services/ runs one way: entry points -> service registry -> services ->
doors -> runtime -> core -> building blocks -> foundation, with no circle, lazy imports included."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "services")

# Lowest first. A module may import its own layer or any layer below, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "shared.errors",
        "shared.settings",
        "shared.logging",
        "shared.metrics",
        "shared.privacy",
        "shared.files",
        "shared.jsonlimits",
        "shared.locks",
        "shared.sqlite",
    ),
    (
        "shared.events",
        "shared.features",
        "shared.state",
        "shared.decisions",
        "shared.modeling",
        "shared.rules",
        "shared.control",
    ),
    ("shared.core",),
    ("shared.runtime", "shared.batch"),
    ("shared.doors",),
    ("services.fraud_detection", "services.claims_risk", "services.disease_risk"),
    ("services.registry",),
    ("services.desk",),
    ("services.cli", "services.demo"),
)
DOMAINS = LAYERS[5]


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Every project module `module` imports, wherever the import stands (module level or in a function)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                targets.add(candidate if candidate in known else base)
    return {_owner(t, known) for t in targets if t.split(".")[0] in PACKAGES} - {module, ""}


def _owner(name: str, known: set[str]) -> str:
    """The project module an imported name lives in (the longest known prefix)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def _layer(module: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in this test")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def test_every_module_has_a_layer(graph: dict[str, set[str]]) -> None:
    """A new module must be placed in the architecture before it can be imported from anywhere."""
    for module in graph:
        if module not in PACKAGES and module != "services":
            _layer(module)


def test_no_import_runs_back_up(graph: dict[str, set[str]]) -> None:
    """No module imports from a layer above its own (e.g. the core from the runtime, shared from services)."""
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in graph.items()
        if module not in PACKAGES
        for target in targets
        if target not in PACKAGES and _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(sorted(upward))


def test_services_never_import_each_other(graph: dict[str, set[str]]) -> None:
    """Services talk over Kafka: fraud, claims and disease share only shared/."""
    crossing = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        for domain in DOMAINS
        if module.startswith(domain) and any(target.startswith(d) for d in DOMAINS if d != domain)
    ]
    assert not crossing, "\n".join(crossing)


def test_there_is_no_import_circle(graph: dict[str, set[str]]) -> None:
    """The module graph (lazy imports included) is acyclic."""
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        pytest.fail(f"import circle: {' -> '.join(error.args[1])}")


def test_the_graph_is_read_at_all(graph: dict[str, set[str]]) -> None:
    """The reader finds the edges it must (guards the other tests against passing on an empty graph)."""
    assert "shared.core.scoring" in graph["shared.runtime"]
    assert "shared.doors.control" in graph["services.cli"]  # a lazy import inside a function
    assert "shared.doors.http" in graph["services.registry"]
