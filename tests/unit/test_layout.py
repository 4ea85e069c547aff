"""The package's architecture rules, checked on the source: no import cycles, pure detect/, one root."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "service" / "anomstream"


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every anomstream module ``path`` imports, at any depth (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("anomstream"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _exists(candidate) else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("anomstream")}
    return found


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    return (PKG.parent / rel).with_suffix(".py").is_file() or (PKG.parent / rel / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in PKG.rglob("*.py")}


def _third_party(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
    return names


def test_no_import_cycles() -> None:
    """No module reaches itself through the imports of anomstream modules."""
    graph = _graph()
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(node) :], node]))
        if node in done:
            return
        for nxt in graph.get(node, ()):
            if nxt != node and not nxt.startswith(node + "."):  # a package importing its own module
                visit(nxt, [*stack, node])
        done.add(node)

    for module in graph:
        visit(module, [])


def test_detect_never_imports_kafka_or_the_stream_side() -> None:
    """detect/ is pure: no confluent_kafka, no stream/, ops/, offline/ or app imports."""
    for path in (PKG / "detect").rglob("*.py"):
        assert "confluent_kafka" not in _third_party(path), path
        bad = {m for m in _imports(path) if m.split(".")[1] in {"stream", "ops", "offline", "app", "cli"}}
        assert not bad, f"{path.name} imports {bad}"


def test_only_app_and_cli_import_app() -> None:
    """app.py is the composition root: nothing below it imports it (the CLI calls it)."""
    for module, imports in _graph().items():
        if "anomstream.app" in imports:
            assert module.startswith("anomstream.cli"), module


def test_environment_is_read_only_by_config() -> None:
    """No module but config.py reads os.environ."""
    for path in PKG.rglob("*.py"):
        if path.name != "config.py":
            assert "os.environ" not in path.read_text(), path


def test_modules_stay_small() -> None:
    """No module grows past ~300 lines (a sign that it owns more than one thing)."""
    for path in PKG.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 330, f"{path.relative_to(PKG)} has {lines} lines"
