"""The package's import graph: no circles, no module importing from a layer above its own, and
the function never importing the command line. Read from the sources (every import statement,
a function's too), so a lazy import counts like any other."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "auditor"

#: Bottom to top: a module may import from its own layer and the ones before it (README, "Layers").
LAYERS = (
    ("contract", "aws", "config"),  # names shared with infra/, the AWS edge helpers, settings
    ("facts", "denial", "changes"),  # what lookups found; access-denied messages; successful changes
    ("records",),  # a CloudTrail record -> FailedCall
    ("roots",),  # the root-cause rules
    ("causes",),  # the catalog
    ("finding",),
    ("classify",),  # FailedCall (+ Facts) -> Finding, and its root
    ("incidents", "pairing", "text"),  # failures and incidents as data; one failure of several records
    ("lifecycle", "render", "incident_event"),  # pure decisions; what people and machines read
    ("storage",),  # the state table
    ("joins", "change_log", "sweep", "publish", "enrich"),  # functions over the table; the channels; lookups
    ("pipeline",),  # the order of work
    ("handler", "pagerduty_forwarder"),  # Lambda entry points
    ("cli",),  # the command line (never shipped in the function)
)
LAYER = {name: number for number, names in enumerate(LAYERS) for name in names}


def module_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join(parts) or "__init__"


def unit(module: str) -> str:
    """The layer unit a module belongs to: a top-level module, or its package (causes, cli)."""
    return module.split(".")[0]


def imports(path: Path) -> set[str]:
    """The package's modules ``path`` imports (as dotted names inside the package)."""
    module = module_of(path)
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                if node.module is None:
                    found.update(".".join([*base, alias.name]) for alias in node.names)
                else:
                    found.add(target)
            elif node.module and node.module.split(".")[0] == "auditor":
                found.add(".".join(node.module.split(".")[1:]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "auditor":
                    found.add(".".join(alias.name.split(".")[1:]))
    return {f for f in found if f and f != module}


def graph() -> dict[str, set[str]]:
    return {module_of(p): imports(p) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def test_every_module_has_a_layer():
    assert {unit(m) for m in graph()} - {"__init__"} <= set(LAYER), sorted({unit(m) for m in graph()} - set(LAYER))


def test_no_module_imports_from_a_layer_above_its_own():
    wrong = []
    for module, targets in graph().items():
        if module == "__init__":
            continue
        for target in targets:
            if unit(target) in LAYER and LAYER[unit(target)] > LAYER[unit(module)]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_the_import_graph_has_no_circles():
    edges = graph()
    units: dict[str, set[str]] = {}
    for module, targets in edges.items():
        units.setdefault(unit(module), set()).update(unit(t) for t in targets if unit(t) != unit(module))
    # modules inside a package, and units against each other
    for nodes in (edges, units):
        seen, stack, cycles = set(), [], []

        def visit(node, path):
            if node in path:
                cycles.append(path[path.index(node):] + [node])
                return
            if node in seen:
                return
            seen.add(node)
            for nxt in nodes.get(node, ()):
                visit(nxt, path + [node])

        for node in list(nodes):
            visit(node, stack)
        assert not cycles, cycles[:3]


def test_the_function_never_imports_the_command_line():
    edges = graph()
    reach, todo = set(), ["handler", "pagerduty_forwarder"]
    while todo:
        module = todo.pop()
        if module in reach:
            continue
        reach.add(module)
        todo.extend(t for t in edges.get(module, ()) if t in edges or t.split(".")[0] in edges)
    assert not [m for m in reach if m.startswith("cli")], sorted(m for m in reach if m.startswith("cli"))


def test_the_check_sees_a_lazy_import_and_a_circle(tmp_path):
    probe = PACKAGE / "_probe_layers.py"
    try:
        probe.write_text("def f():\n    from .pipeline import Pipeline\n")
        assert "pipeline" in imports(probe)
    finally:
        probe.unlink(missing_ok=True)
