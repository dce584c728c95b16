"""The house shows the request path: every module sits on a floor, and no import runs back up.

Floors, lowest first (a module may import its own floor and the floors below it):
  0 foundations   errors, config/, observe/logs
  1 records       exchange, store/, contracts/, observe/templating, observe/tracecontext
  2 stages        routes, identity/, sanitize, credentials/, send/, suspensions, check, respond, problem,
                  stream_respond
  3 around        observe/ (the rest), generation
  4 composition   process, pipeline
  5 listeners     admin, admin_auth, app, workers
  6 entry points  cli, __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "egress"

FLOORS = [
    ("egress.errors", 0), ("egress.config", 0), ("egress.observe.logs", 0), ("egress.cpus", 0),
    ("egress.exchange", 1), ("egress.store", 1), ("egress.contracts", 1),
    ("egress.observe.templating", 1), ("egress.observe.tracecontext", 1),
    ("egress.routes", 2), ("egress.identity", 2), ("egress.sanitize", 2), ("egress.credentials", 2),
    ("egress.send", 2), ("egress.suspensions", 2), ("egress.check", 2), ("egress.respond", 2), ("egress.problem", 2),
    ("egress.stream_respond", 2), ("egress.passthrough", 2),
    ("egress.observe", 3), ("egress.generation", 3),
    ("egress.process", 4), ("egress.pipeline", 4),
    ("egress.admin", 5), ("egress.admin_auth", 5), ("egress.app", 5), ("egress.workers", 5),
    ("egress.cli", 6), ("egress.__main__", 6),
]


def floor_of(module: str) -> int:
    best = None
    for prefix, floor in FLOORS:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, floor)
    if best is None:
        raise AssertionError(f"{module} has no floor: add it to FLOORS (and to this docstring)")
    return best[1]


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if name != "egress":
            yield name, path


def imports_of(name: str, path: Path):
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("egress"):
                for alias in node.names:   # `from egress import check` imports egress.check
                    sub = f"{target}.{alias.name}"
                    yield sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() \
                        or (PACKAGE.parent / sub.replace(".", "/")).is_dir() else target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("egress"):
                    yield alias.name


ALL = list(modules())


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_no_import_runs_back_up_a_floor(name, path):
    mine = floor_of(name)
    for target in imports_of(name, path):
        if target == "egress":
            continue
        assert floor_of(target) <= mine, f"{name} (floor {mine}) imports {target} (floor {floor_of(target)})"


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_modules_are_small_and_say_what_they_own(name, path):
    text = path.read_text()
    assert len(text.splitlines()) <= 330, f"{name}: {len(text.splitlines())} lines; split it by concern"
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.strip(), f"{name} has no docstring saying what it owns"


def test_only_the_pipeline_orders_the_stages():
    importers = [n for n, p in ALL if "egress.pipeline" in set(imports_of(n, p))]
    assert sorted(importers) == ["egress.app"], importers
