"""The host tools in tools/: each module imports on its own as the scripts import their
siblings, the command lines answer --help, and the helpers they share have one home
(tools/host.py), not a copy per tool and no ``sys.path`` edit."""

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"
MODULES = sorted(path.stem for path in TOOLS.glob("*.py"))
COMMANDS = ["docker_engine", "images", "kube_cluster", "helm", "chart_schema"]


def run_python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def top_level_functions(module: str) -> set[str]:
    tree = ast.parse((TOOLS / f"{module}.py").read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_tool_module_imports_on_its_own():
    # the folder of a script is the first entry of its path: the same as cwd=tools with -c
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda m: (m, run_python("-c", f"import {m}", cwd=TOOLS)), MODULES)
        )
    assert {"host", "kube_cluster", "kube_build", "kube_pki", "kube_hoststate"} <= set(MODULES)
    failed = [f"{m}: {r.stderr[-1500:]}" for m, r in results if r.returncode != 0]
    assert not failed, "\n".join(failed)


def test_the_commands_answer_help_from_the_repository_root():
    for module in COMMANDS:
        result = run_python(f"tools/{module}.py", "--help", cwd=TOOLS.parent)
        assert result.returncode == 0, f"{module}: {result.stderr[-1500:]}"
        assert result.stdout.startswith("usage:"), module
    result = run_python("tools/kube_cluster.py", "--help", cwd=TOOLS.parent)
    for command in ("build", "start", "stop", "status", "kubeconfig"):
        assert command in result.stdout


def test_shared_helpers_live_in_host_only():
    shared = {"docker_works", "image_exists", "read_pid", "program", "processes_named"}
    shared |= {"free_port", "port_free", "apt_env"}
    assert shared <= top_level_functions("host")
    copies = {
        module: sorted(top_level_functions(module) & shared)
        for module in MODULES
        if module != "host" and top_level_functions(module) & shared
    }
    assert copies == {}
    edits = [m for m in MODULES if "sys.path" in (TOOLS / f"{m}.py").read_text()]
    assert edits == []


def test_the_cluster_module_keeps_the_tests_api_and_the_build_cache_key():
    script = (
        "import kube_cluster, kube_build, host; "
        "c = kube_cluster.Cluster(); "
        "assert issubclass(kube_cluster.ClusterError, RuntimeError); "
        "assert kube_build.CACHE.name == f'kubernetes-{kube_build.VERSION}'; "
        "assert kube_build.VERSION == '1.20.2'; "
        "assert kube_build.CACHE.parent.name == 'dlhub'; "
        "assert kube_cluster.BIN == kube_build.CACHE / 'bin'; "
        "assert c.state.name == '.kube-cluster' and c.node_ip == '172.17.0.1'; "
        "print(len(kube_build.OOM_PATCHES))"
    )
    result = run_python("-c", script, cwd=TOOLS)
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.strip() == "2"
