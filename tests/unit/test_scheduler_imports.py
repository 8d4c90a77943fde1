"""The GPU scheduler's modules import no circle, and each imports on its own."""

import ast
import subprocess
import sys
from pathlib import Path

import gpu_scheduler

PACKAGE = Path(gpu_scheduler.__file__).parent


def package_imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere: at the top or in a function)."""
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    graph = {}
    for name in sorted(modules):
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    found.add(node.module.split(".")[0])
                elif node.level == 1:
                    found.update(a.name for a in node.names)
                elif (node.module or "").startswith("gpu_scheduler."):
                    found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found.update(
                    a.name.split(".")[1] for a in node.names if a.name.startswith("gpu_scheduler.")
                )
        graph[name] = found & modules
    return graph


def test_no_import_circles():
    graph = package_imports()
    assert graph["pages"] and graph["service"], "the import graph was not read"
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            circle = " -> ".join(path[path.index(name) :] + (name,))
            raise AssertionError(f"import circle: {circle}")
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, path + (name,))
        done.add(name)

    for name in graph:
        visit(name, ())
    assert "service" not in graph["pages"] and "service" not in graph["state"]


def test_every_module_imports_on_its_own():
    for name in sorted(package_imports()):
        result = subprocess.run(
            [sys.executable, "-c", f"import gpu_scheduler.{name}"],
            capture_output=True,
            text=True,
            cwd=PACKAGE.parent,
            timeout=60,
        )
        assert result.returncode == 0, f"gpu_scheduler.{name}: {result.stderr[-2000:]}"
