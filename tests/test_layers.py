"""The package's layers, read from the source: imports (function-local ones included) point
down the stack only, and no two modules import each other, directly or through others."""

import ast
from pathlib import Path

import sckd

SRC = Path(sckd.__file__).parent
LAYERS = [
    {"errors", "atomic", "config"},
    {"ops"},
    {"data"},
    {"models", "eval"},
    {"distill"},
    {"engine"},          # the training loop and its parts
    {"experiment", "report"},  # one experiment: assembly, train, predict; tables and figures
    {"deploy"},
    {"workflows"},       # multi-run jobs: pipeline, demo, reproduce, study
    {"cli", "__main__"},
]
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        parts = ("sckd", *p.relative_to(SRC).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every sckd module ``name`` imports, wherever the import statement sits."""
    found = set()
    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(pkg[: len(pkg) - node.level + 1] + [node.module or ""]).strip(".") if node.level else node.module
            # ``from pkg import submodule`` imports the submodule; other names come from pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("sckd."):
                found.add(t)
    return found


def _graph():
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1]
    assert top in RANK, f"{module}: package '{top}' has no layer in tests/test_layers.py"
    return RANK[top]


def test_imports_point_down_only():
    bad = [f"{a} -> {b}" for a, deps in _graph().items() if a != "sckd" for b in deps if _layer(b) > _layer(a)]
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_source_file_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_no_private_name_crosses_a_module():
    found = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sckd") or (
                    isinstance(node, ast.ImportFrom) and node.level):
                found += [f"{name}: {a.name}" for a in node.names if a.name.startswith("_") and a.name != "__future__"]
    assert not found, found
