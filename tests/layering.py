"""The import rules of src/prunekit, read from the source with `ast` (nothing is imported): the layers in order,
what each may import, and the check that finds a lower layer importing a higher one or any import circle.

docs/design.md lists the same layers; tests/test_layering.py applies the rules to the tree.

Every `import` counts: at module level, inside functions (deferred imports) and under `if TYPE_CHECKING:`. A type
hint is a dependency a reader has to follow too, and a circle that only type checkers see still knots two modules
together; a Protocol in the lower module (e.g. `prunekit.runner.state.RunState`) is the way out.
"""

from __future__ import annotations

import ast
from pathlib import Path

# Lowest first. A module may import its own unit (top-level package or module) and any unit of a lower layer;
# units that share a layer are independent of each other. "" is the package itself (prunekit/__init__.py).
LAYERS: list[tuple[str, ...]] = [
    ("common",),  # errors, wording, safe text and files, registry, batches, user code, timing: no prunekit imports
    ("config",),  # the frozen config dataclasses, YAML and --set, bounds and checks
    ("models", "data", "distributed"),  # the zoo, in-memory datasets, process groups
    ("train",),  # the training loop, optimizers and lr schedules
    ("pruning",),  # masks, criteria, allocations, methods' plans, structured, post-training, AMC search, flops
    ("sparse_inference",),  # sparse layers for inference
    ("export",),  # file formats: dense, sparse, compact, onnx
    ("tasks",),  # how a network is built, trained and evaluated
    ("store",),  # the run directory: lock, config, checkpoints, summary, rounds.csv
    ("report",),  # tables and figures from run directories
    ("trackers",),  # MLflow, TensorBoard
    ("runner",),  # Run: sequences a method's rounds with a Task and a Store
    ("inspection",),  # `prunekit inspect` and `export` of run directories
    ("sensitivity", "sweep", "streaming"),  # commands built on runs; streamed pruning of checkpoints on disk
    ("api", "searches"),  # prunekit.Experiment; amc_search, autoprune, bitprune
    ("",),  # the public API (prunekit/__init__.py)
    ("cli", "batches", "latency", "experiment"),  # the command line; deprecated aliases of moved paths
    ("__main__",),  # python -m prunekit
]


def modules(src: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package __init__) for every .py file under src/prunekit."""
    found = {}
    for path in sorted((src / "prunekit").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def imports(src: Path) -> dict[str, set[str]]:
    """Each prunekit module -> the prunekit modules it imports (the deepest module each import names)."""
    mods = modules(src)

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, package) in mods.items():
        deps: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(resolve(a.name) for a in node.names if a.name.split(".")[0] == "prunekit")
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package, `level - 1` packages up
                    here = name.split(".") if package else name.split(".")[:-1]
                    base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
                if base.split(".")[0] != "prunekit":
                    continue
                deps.update(
                    resolve(f"{base}.{a.name}") if f"{base}.{a.name}" in mods else resolve(base) for a in node.names
                )
        graph[name] = {d for d in deps if d and d != name}
    return graph


def unit(module: str) -> str:
    """The top-level package or module a module belongs to ("" for prunekit/__init__.py)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int | None:
    return next((i for i, names in enumerate(LAYERS) if unit(module) in names), None)


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports that break the layer order: into a higher layer, or into another unit of the same layer."""
    bad = []
    for module, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if unit(dep) == unit(module):
                continue
            mine, theirs = layer_of(module), layer_of(dep)
            if mine is not None and theirs is not None and theirs >= mine:
                bad.append(f"{module} imports {dep} ({'a higher' if theirs > mine else 'the same'} layer)")
    return bad


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: every strongly connected group of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found
