"""The package's import structure: no import circles, imports at the top of modules, and the library never importing
the course that is built on it.

An import inside a function is allowed only for an optional or heavy dependency, and says why in a comment on
its line (e.g. `import tensorflow_datasets as tfds  # local: heavy, only for data.name=tfds`).
"""

import ast
import os

from tests.conftest import ROOT

PACKAGE = os.path.join(ROOT, "jgen")


def _modules() -> dict[str, str]:
    """module name -> file path, for every module of jgen."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the jgen modules it imports (`from pkg import name` counts as importing pkg.name when that is a
    module, else pkg)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(open(path).read(), path)
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in modules:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    deps.add(sub if sub in modules else node.module)
        deps.discard(name)
        graph[name] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_find_cycles_finds_a_planted_circle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    graph = import_graph()
    assert len(graph) > 40 and "jgen.run" in graph
    assert find_cycles(graph) == []


def test_function_level_imports_say_why():
    unexplained = []
    for path in _modules().values():
        lines = open(path).read().splitlines()
        tree = ast.parse("\n".join(lines), path)
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and "# local:" not in lines[node.lineno - 1]:
                        unexplained.append(f"{path}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, "imports inside functions without a '# local: why' comment:\n" + "\n".join(unexplained)


def imported_modules(path: str) -> set[str]:
    """Every module name a file imports, at any depth (`from a.b import c` counts a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_the_library_never_imports_the_course():
    """course/ (the course's charts and notebook helpers) depends on jgen, never the other way: jgen keeps no chart
    code, and `python -m course` is the course's own door."""
    found = {
        os.path.relpath(path, ROOT): sorted(n for n in imported_modules(path) if n.split(".")[0] == "course")
        for path in _modules().values()
    }
    assert not {p: n for p, n in found.items() if n}, found
    course = os.path.join(ROOT, "course")
    assert any(
        "jgen" in n for f in os.listdir(course) if f.endswith(".py") for n in imported_modules(os.path.join(course, f))
    )
    assert not any(f in ("figures", "notebook.py") for f in os.listdir(PACKAGE)), "chart code belongs in course/"
