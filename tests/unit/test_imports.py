"""The import graph of dlhub's two packages (hub_config, gpu_scheduler): no circles, counting
imports inside functions, across both packages; and every module imports on its own."""

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gpu_scheduler
import hub_config

PACKAGES = {p.__name__: Path(p.__file__).parent for p in (hub_config, gpu_scheduler)}

#: Files of the packages that are not modules to import: JupyterHub executes this one with
#: ``get_config`` defined (``jupyterhub -f``).
NOT_MODULES = {"hub_config.jupyterhub_config"}


def modules() -> set[str]:
    """Every top-level module of the packages, as ``package.module``."""
    return {
        f"{package}.{path.stem}"
        for package, folder in PACKAGES.items()
        for path in folder.glob("*.py")
        if path.stem != "__init__"
    } - NOT_MODULES


def imported(package: str, tree: ast.AST, known: set[str]) -> set[str]:
    """The modules of ``known`` that a module of ``package`` imports, anywhere in it (at
    the top or in a function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = f"{package}.{node.module}" if node.module else package
            elif node.level == 0:
                base = node.module or ""
            else:
                continue
            found.add(".".join(base.split(".")[:2]))
            found.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(".".join(a.name.split(".")[:2]) for a in node.names)
    return found & known


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of both packages it imports."""
    known = modules()
    graph = {}
    for name in sorted(known):
        package, module = name.split(".")
        tree = ast.parse((PACKAGES[package] / f"{module}.py").read_text())
        graph[name] = imported(package, tree, known) - {name}
    return graph


def circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (``[a, b, a]``), or None."""
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]):
        if name in path:
            return list(path[path.index(name) :] + (name,))
        if name in done:
            return None
        for target in sorted(graph[name]):
            found = visit(target, path + (name,))
            if found:
                return found
        done.add(name)
        return None

    for name in sorted(graph):
        found = visit(name, ())
        if found:
            return found
    return None


def test_the_graph_is_read():
    graph = import_graph()
    # edges the packages have: a relative import, an absolute one, one inside a function,
    # and one from the hub into the scheduler's contract
    assert "hub_config.mapping" in graph["hub_config.hub"]
    assert "gpu_scheduler.state" in graph["gpu_scheduler.pages"]
    assert "hub_config.mapping" in graph["gpu_scheduler.service"]
    assert "gpu_scheduler.contract" in graph["hub_config.mapping"]
    assert "hub_config.k8s_objects" in graph["hub_config.kubernetes"]


def test_a_circle_is_found():
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": set()}
    assert circle(graph) == ["p.a", "p.b", "p.c", "p.a"]
    assert circle({"p.a": {"p.b"}, "p.b": set()}) is None


def test_no_import_circles():
    found = circle(import_graph())
    assert found is None, "import circle: " + " -> ".join(found)


def test_the_layers():
    """Pure modules stay pure: the config mapping and the Kubernetes objects import no
    spawner (so no KubeSpawner), and the scheduler's pages and state not its service."""
    graph = import_graph()
    for pure in ("hub_config.mapping", "hub_config.k8s_objects", "hub_config.k8s_env"):
        assert not graph[pure] & {"hub_config.kubernetes", "hub_config.spawners"}, pure
    assert "gpu_scheduler.service" not in graph["gpu_scheduler.pages"]
    assert "gpu_scheduler.service" not in graph["gpu_scheduler.state"]
    assert not {m for m in graph["gpu_scheduler.contract"] if m.startswith("hub_config.")}


def import_alone(name: str) -> tuple[str, int, str]:
    result = subprocess.run(
        [sys.executable, "-c", f"import {name}"],
        capture_output=True,
        text=True,
        cwd=PACKAGES["hub_config"].parent,
        timeout=120,
    )
    return name, result.returncode, result.stderr[-2000:]


def test_every_module_imports_on_its_own():
    # a package's __main__ is the program `python -m` runs: importing it runs it
    names = sorted(m for m in modules() if not m.endswith(".__main__"))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(import_alone, names))
    assert len(results) > 40
    failed = [f"{name}: {err}" for name, rc, err in results if rc != 0]
    assert not failed, "\n".join(failed)
