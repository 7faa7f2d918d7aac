"""The import contract of docs/design.md: layers only point down.

core (fsclap/ minus the application modules) <- pipeline/ and model/ (neither imports the other)
<- flows/ <- application (fsclap.cli, demo, web, weights, testing). Every first-party import counts,
at module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fsclap", "pipeline", "model", "flows")
APPLICATION = {"cli", "demo", "demo_prefect", "web", "weights", "testing", "__main__"}
RANK = {"core": 0, "pipeline": 1, "model": 1, "flows": 2, "application": 3}

# Known exceptions, each with the reason it is still there. The test fails when one disappears,
# so the list only shrinks. (Empty: the last one, the runner's pre-flight reaching into
# fsclap.weights, went when the stages started declaring their models' loaders in the core's
# fsclap.model_store.)
ALLOWED: set[tuple[str, str]] = set()


def layer(module: str) -> str:
    top, _, rest = module.partition(".")
    if top == "fsclap":
        return "application" if rest.split(".")[0] in APPLICATION else "core"
    return top


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def first_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            # `from fsclap import web` imports the module fsclap.web
            found.update(f"{node.module}.{a.name}" for a in node.names if node.module in PACKAGES)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def allowed(importer: str, imported: str) -> bool:
    a, b = layer(importer), layer(imported)
    if {a, b} == {"pipeline", "model"}:
        return False  # siblings: shared code belongs in the core
    return RANK[b] <= RANK[a]


def imports_by_module() -> dict[str, set[str]]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[module_name(path)] = first_party_imports(path)
    return out


def test_layers_only_point_down():
    modules = imports_by_module()
    broken = sorted(
        (importer, imported)
        for importer, imports in modules.items()
        for imported in imports
        if not allowed(importer, imported)
        and not any(importer == a and imported.startswith(b) for a, b in ALLOWED)
    )
    assert not broken, "imports against the layers (docs/design.md):\n" + "\n".join(
        f"  {a} ({layer(a)}) -> {b} ({layer(b)})" for a, b in broken
    )


def test_known_exceptions_still_exist():
    modules = imports_by_module()
    stale = [(a, b) for a, b in ALLOWED if not any(m.startswith(b) for m in modules.get(a, set()))]
    assert not stale, f"fixed, remove from ALLOWED: {stale}"


def test_the_rule_catches_upward_and_sideways_imports():
    assert not allowed("pipeline.caption", "model.data")
    assert not allowed("model.data", "pipeline.caption")
    assert not allowed("fsclap.audio", "pipeline.stage")
    assert not allowed("flows.train", "fsclap.cli")
    assert allowed("fsclap.cli", "flows.train") and allowed("model.data", "fsclap.caption_writer")
    assert layer("fsclap.web.app") == "application" and layer("fsclap.layout") == "core"


# First-party imports inside functions, each with its reason; everything else imports at module
# level so the import graph is what the file's head says. The test fails when one disappears.
LAZY_ALLOWED: set[tuple[str, str]] = set()  # none left: keep it that way


def imports_inside_functions() -> set[tuple[str, str]]:
    found = set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for function in ast.walk(tree):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.Import):
                        names = [a.name for a in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        names = [node.module]
                    else:
                        continue
                    found.update(
                        (module_name(path), n) for n in names if n.split(".")[0] in PACKAGES
                    )
    return found


def test_first_party_imports_sit_at_module_level():
    found = imports_inside_functions()
    assert found <= LAZY_ALLOWED, "first-party imports inside functions:\n" + "\n".join(
        f"  {a} -> {b}" for a, b in sorted(found - LAZY_ALLOWED)
    )
    assert LAZY_ALLOWED <= found, f"fixed, remove from LAZY_ALLOWED: {sorted(LAZY_ALLOWED - found)}"
