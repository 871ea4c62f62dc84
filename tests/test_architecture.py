"""The layout's rules, checked (docs/architecture.md).

- no import cycles among exact_inj's modules (module-level imports, the ones
  that run at import time);
- no private name (``_x``) imported from another module;
- the trusted base (``exact_inj.certify``) imports no solver and nothing that
  searches, checked in a fresh interpreter.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

PKG = pathlib.Path(__file__).resolve().parent.parent / "exact_inj"


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _resolve(module: str, is_pkg: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_pkg:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _imports(module: str, path: pathlib.Path, top_level_only: bool):
    """(imported module, names, line) for each exact_inj import in the file."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    mods = _modules()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve(module, is_pkg, node.level, node.module)
            elif node.module and node.module.startswith("exact_inj"):
                base = node.module
            else:
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                yield (sub if sub in mods else base), a.name, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("exact_inj"):
                    yield a.name, None, node.lineno


def import_graph() -> dict[str, set[str]]:
    """Module -> the exact_inj modules it imports at import time."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for target, _, _ in _imports(m, p, top_level_only=True):
            if target != m and target in mods:
                graph[m].add(target)
                # Importing a.b.c runs a/__init__ and a/b/__init__ first.
                parts = target.split(".")
                for k in range(2, len(parts)):
                    parent = ".".join(parts[:k])
                    if parent in mods and parent != m and not m.startswith(parent + "."):
                        graph[m].add(parent)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_can_fail():
    # The check above must be able to fail: a planted cycle is found.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_private_names_across_modules():
    mods = _modules()
    bad = []
    for m, p in mods.items():
        for target, name, line in _imports(m, p, top_level_only=False):
            if name and name.startswith("_") and not name.startswith("__") and target != m:
                bad.append(f"{p.relative_to(PKG.parent)}:{line} imports {name} from {target}")
    assert not bad, "\n".join(bad)


def test_certify_imports_no_solver_and_no_search():
    code = (
        "import sys, exact_inj.certify, exact_inj.certify.check\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('highspy', 'pulp') or m.startswith(("
        "'exact_inj.layer', 'exact_inj.network', 'exact_inj.solver', 'exact_inj.studies', 'exact_inj.io.onnx', "
        "'exact_inj.io.torch')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PKG.parent).stdout.strip()
    assert out == "", f"importing exact_inj.certify also imported: {out}"


@pytest.mark.parametrize("module", ["exact_inj.layer.decide", "exact_inj.solver"])
def test_the_closure_check_can_fail(module):
    # The same probe sees a solver when one is imported, so the test above can fail.
    code = f"import sys, {module}\nprint('highspy' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PKG.parent).stdout.strip()
    assert out == "True"


if __name__ == "__main__":  # python tests/test_architecture.py prints the graph
    for mod, deps in sorted(import_graph().items()):
        print(mod, "->", ", ".join(sorted(deps)) or "-")
    print("cycle:", find_cycle(import_graph()))


def test_only_the_solver_module_imports_a_solver():
    # One place maps solver statuses to Outcome (solver.py); a route that read
    # HiGHS's statuses itself could take an unknown status for an answer.
    bad = []
    for m, p in _modules().items():
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(n.split(".")[0] in ("highspy", "pulp") for n in names) and m != "exact_inj.solver":
                bad.append(f"{p.relative_to(PKG.parent)}:{node.lineno}")
    assert not bad, "solver imported outside exact_inj/solver.py: " + ", ".join(bad)
