"""The import graph of the project: no cycles at all, and the layer contract of pyproject.toml.

`lint-imports` (run by `make test`) checks the layers; this file checks what a layer contract
cannot: that no two modules import each other through any chain, including imports inside
functions, which is how cycles used to hide. grimp (import-linter's graph builder) reads every
import statement in a module, wherever it stands; the first test proves that on a known
function-level import, so the cycle check cannot pass by not seeing them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("workbench", "search", cache_dir=None)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_graph_sees_imports_inside_functions(graph):
    # workbench/cli.py imports workbench.schema only inside main().
    assert graph.direct_import_exists(importer="workbench.cli", imported="workbench.schema")


def test_cycle_finder_finds_a_planted_cycle():
    graph = grimp.build_graph("workbench", "search", cache_dir=None)  # not the shared one
    graph.add_import(importer="workbench.records", imported="workbench.runner")
    assert any({"workbench.records", "workbench.runner"} <= set(c) for c in _cycles(graph))


def test_no_import_cycles(graph):
    assert _cycles(graph) == []


def test_layer_contract_is_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout
