"""No import circle anywhere in the package (issue 20): between modules, counting every import
(those inside functions too, which are circles postponed, not removed), and between the
top-level packages (the arrows docs/design.md lists, checked there by test_docs.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "spikelm"


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """{module: spikelm modules it imports}; ``from a import b`` counts as importing a.b when
    a.b is a module (a package's __init__ is not imported through it)."""
    mods = {}
    for f in root.rglob("*.py"):
        parts = f.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = f

    def resolve(n):
        while n and n not in mods:
            n = n.rpartition(".")[0]
        return n

    graph = {m: set() for m in mods}
    for m, f in mods.items():
        package = m if f.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for n in names:
                target = resolve(n) if n.startswith("spikelm") else ""
                if target and target not in (m, "spikelm"):
                    graph[m].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_circle_between_modules():
    assert circles(module_graph()) == []


def test_no_import_circle_between_packages():
    graph = module_graph()
    top = lambda m: m.split(".")[1] if m.count(".") else m
    packages = {}
    for m, targets in graph.items():
        packages.setdefault(top(m), set()).update(top(t) for t in targets if top(t) != top(m))
    assert circles(packages) == []


def test_the_circle_finder_finds_circles():
    """The finder itself, on the kinds of circle this package had: two modules, a longer ring,
    a package __init__ and its plugins, and the same through a local import."""
    assert circles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    ring = {"convert": {"session"}, "session": {"drift"}, "drift": {"checkpoint"}, "checkpoint": {"convert"}}
    assert circles(ring) == [sorted(ring)]
    assert circles({"x": {"y"}, "y": {"z"}, "z": set()}) == []
    g = module_graph(ROOT)
    assert "spikelm.lm.ops.registry" in g["spikelm.lm.ops.softmax"]  # relative and absolute imports resolved
    assert "spikelm.lm.learn.session" in g["spikelm.lm.learn"]  # an import inside a function counts
