"""The bridge's packages import downward only: no cycle between them.

An AST scan of every module under ``bridge/``.  Each subpackage (``bridge.call``,
``bridge.ops``…) and each top-level module (``bridge.http``, ``bridge.metrics``…) is one
node; an import, at any depth of a module (inside functions too), is an edge from the
importing node to the imported one.  A cycle fails with the modules that make it, so
the fix can start from them: move what both sides need into a module below both.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

BRIDGE = Path(__file__).resolve().parents[1] / "bridge"

Edges = dict[str, dict[str, list[str]]]  # node -> imported node -> importing files


def _node(module: str) -> str | None:
    """``bridge.call.driver`` → ``call``; ``bridge.http`` → ``http``; others None."""
    parts = module.split(".")
    if parts[0] != "bridge" or len(parts) < 2:
        return None
    return parts[1]


def _imports(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            # ``from bridge import metrics``: the name may itself be a module
            if node.module == "bridge":
                found.extend(f"bridge.{alias.name}" for alias in node.names)
    return found


def import_graph(root: Path = BRIDGE) -> Edges:
    edges: Edges = defaultdict(lambda: defaultdict(list))
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        source = _node(".".join(rel.parts))
        if source is None or source == "__init__":
            continue
        for module in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            target = _node(module)
            if target is not None and target != source:
                edges[source][target].append(str(path.relative_to(root.parent)))
    return edges


def cycles(edges: Edges) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_package_imports_another_that_imports_it_back() -> None:
    edges = import_graph()
    problems = []
    for component in cycles(edges):
        members = set(component)
        for a in component:
            for b, files in sorted(edges[a].items()):
                if b in members:
                    problems.append(f"{a} -> {b}: {', '.join(sorted(set(files)))}")
    assert not problems, "package import cycle:\n" + "\n".join(problems)


def test_the_scan_sees_the_packages_and_their_edges() -> None:
    edges = import_graph()
    # The layering the scan must see (so an empty graph cannot pass the test above).
    assert "call" in edges["telephony"]
    assert "call" in edges["ops"]
    assert "admin" in edges["telephony"]
    assert "metrics" in edges["call"]
    assert {"call", "ops", "telephony", "admin"} <= set(edges["app"])


def test_a_cycle_is_found_and_named(tmp_path: Path) -> None:
    pkg = tmp_path / "bridge"
    for name, body in {
        "a/__init__.py": "",
        "a/x.py": "from bridge.b.y import thing\n",
        "b/__init__.py": "",
        "b/y.py": "def f():\n    from bridge.a.x import other\n",
        "c.py": "import bridge.a.x\n",
    }.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(body, encoding="utf-8")
    edges = import_graph(pkg)
    assert cycles(edges) == [["a", "b"]]
    assert edges["b"]["a"] == ["bridge/b/y.py"]
