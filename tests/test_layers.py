"""Imports point down the layers, never up or sideways (README, "Architecture").

    cli      finsentry.cli
    root     finsentry.cli.worker_app (the worker's composition root, beside the CLI)
    rooms    streams | training | dashboards
    services store | ingest | alerting
    models   models
    base     finsentry (settings, records, metrics, kafka, errors, logging …)

A module may import its own room and anything on a lower layer; rooms of one layer do not
import each other. Every `import` counts, the ones inside functions too, so a cycle cannot
be dodged by moving an import into a function. The check reads the source (ast): it needs
no import of the packages and names each offending line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (layer, rooms of that layer); a room is a module prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("finsentry",)),
    ("models", ("finsentry.models",)),
    ("services", ("finsentry.store", "finsentry.ingest", "finsentry.alerting")),
    ("rooms", ("finsentry.streams", "finsentry.training", "finsentry.dashboards")),
    ("root", ("finsentry.cli.worker_app",)),
    ("cli", ("finsentry.cli",)),
]


def package_folders() -> dict[str, Path]:
    """setup.py's ROOTS: import name -> folder."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ROOTS" for t in node.targets):
            return {name: ROOT / folder for name, folder in ast.literal_eval(node.value).items()}
    raise AssertionError("setup.py has no ROOTS")


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in package_folders().items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            if package == "finsentry" and len(parts) and f"finsentry.{parts[0]}" in package_folders():
                continue  # a room folder that happens to sit under finsentry/ is not the base
            found[name] = path
    return found


def room_of(module: str) -> tuple[int, str]:
    """(layer index, room) of a module: the longest room prefix that names it."""
    best = (-1, "")
    for index, (_, rooms) in enumerate(LAYERS):
        for room in rooms:
            if (module == room or module.startswith(room + ".")) and len(room) > len(best[1]):
                best = (index, room)
    assert best[0] >= 0, f"{module} is in no layer"
    return best


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module) of every finsentry import in a file, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level if path.name != "__init__.py" else len(module.split("."))]
                base = ".".join([*package, base] if base else package)
            # `from finsentry import metrics` imports finsentry.metrics
            found += [
                (node.lineno, f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
                for alias in node.names
            ]
    return [(line, name) for line, name in found if name == "finsentry" or name.startswith("finsentry.")]


MODULES = modules()


def violations() -> list[str]:
    problems = []
    for module, path in sorted(MODULES.items()):
        layer, room = room_of(module)
        for line, target in imported_modules(path, module):
            target_layer, target_room = room_of(target)
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if target_layer > layer:
                problems.append(f"{where}: up from {LAYERS[layer][0]} to {LAYERS[target_layer][0]}")
            elif target_layer == layer and target_room != room:
                problems.append(f"{where}: sideways from {room} to {target_room}")
    return problems


def test_every_module_has_a_layer():
    assert len(MODULES) > 100
    for module in MODULES:
        room_of(module)


def test_imports_point_down():
    problems = violations()
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_the_base_layer_is_the_shared_basics():
    base = sorted(m for m in MODULES if room_of(m)[1] == "finsentry")
    assert "finsentry.settings" in base and "finsentry.records" in base and "finsentry.kafka" in base
    assert not [m for m in base if m.startswith("finsentry.cli")]
