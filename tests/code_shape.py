"""The shape of the code in figures: what docs/ARCHITECTURE.md promises, measured.

    python -m tests.code_shape          # from the checkout's root

Prints import cycles, upward imports, kfp's private names outside the adapter, module sizes,
function lengths (median and 90th percentile), common/'s share of the components, and the
error classes outside the one family. tests/unit/test_architecture.py asserts the same figures.
"""

from __future__ import annotations

import ast
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("components", "pipeline")
MAX_MODULE_LINES = 300
ADAPTER = "pipeline.kfp"  # the one package allowed kfp's private names
# kfp's public surface: a module of kfp outside these (or any name with a leading underscore)
# is private, and kfp may change it in any release.
KFP_PUBLIC = {
    "kfp",
    "kfp.dsl",
    "kfp.compiler",
    "kfp.client",
    "kfp.local",
    "kfp.kubernetes",
    "kfp.components",
}
KFP_LOCAL_PUBLIC = {"init", "SubprocessRunner", "DockerRunner"}
_PRIVATE_ATTRIBUTE = re.compile(r"\._[a-z]\w*_(?:api|config)\b")


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    tree: ast.Module

    @property
    def relative(self) -> str:
        return str(self.path.relative_to(ROOT))


@dataclass
class Shape:
    modules: list[Module]
    imports: dict[str, set[str]] = field(default_factory=dict)

    def cycles(self) -> list[list[str]]:
        """The strongly connected groups of more than one module (Tarjan's algorithm)."""
        index, low, stack, on_stack, groups = {}, {}, [], set(), []

        def visit(node: str) -> None:
            index[node] = low[node] = len(index)
            stack.append(node)
            on_stack.add(node)
            for other in sorted(self.imports.get(node, ())):
                if other not in index:
                    visit(other)
                    low[node] = min(low[node], low[other])
                elif other in on_stack:
                    low[node] = min(low[node], index[other])
            if low[node] == index[node]:
                group = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    group.append(top)
                    if top == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

        for module in sorted(self.imports):
            if module not in index:
                visit(module)
        return groups

    def upward(self) -> list[tuple[str, str]]:
        """Imports against the layers (see layer()): a module never imports a higher layer."""
        return [
            (module, target)
            for module, targets in sorted(self.imports.items())
            for target in sorted(targets)
            if layer(target) > layer(module)
        ]

    def private_kfp(self) -> list[str]:
        """Places outside the adapter that use a private kfp name."""
        found = []
        for module in self.modules:
            if module.name.startswith(ADAPTER):
                continue
            for node in ast.walk(module.tree):
                for target, names in _imported(node, module.name):
                    private = target.startswith("kfp_server_api") or (
                        target.startswith("kfp.")
                        and target not in KFP_PUBLIC
                        and not target.startswith("kfp.kubernetes")
                    )
                    private = private or (
                        target.startswith("kfp") and any(n.startswith("_") for n in names)
                    )
                    if target == "kfp.local" and set(names) - KFP_LOCAL_PUBLIC:
                        private = True
                    if private:
                        found.append(f"{module.relative}:{node.lineno} imports {target}")
            text = module.path.read_text()
            for number, line in enumerate(text.splitlines(), 1):
                if _PRIVATE_ATTRIBUTE.search(line):
                    found.append(f"{module.relative}:{number} {line.strip()}")
        return found

    def big_modules(self) -> list[tuple[str, int]]:
        return sorted(
            ((m.relative, m.lines) for m in self.modules if m.lines > MAX_MODULE_LINES),
            key=lambda item: -item[1],
        )

    def function_lengths(self) -> list[int]:
        return [
            node.end_lineno - node.lineno + 1
            for module in self.modules
            for node in ast.walk(module.tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]

    def common_share(self) -> float:
        components = [m for m in self.modules if m.name.startswith("components.")]
        common = [m for m in components if m.name.startswith("components.common")]
        return sum(m.lines for m in common) / sum(m.lines for m in components)

    def error_classes(self) -> tuple[list[str], list[str]]:
        """(every exception class we define, those not derived from the one base)."""
        classes: dict[str, list[str]] = {}
        for module in self.modules:
            for node in ast.walk(module.tree):
                if isinstance(node, ast.ClassDef):
                    classes[node.name] = [_base_name(b) for b in node.bases]

        def is_error(name: str, seen=()) -> bool:
            if name in seen:
                return False
            if name in classes:
                return any(is_error(b, (*seen, name)) for b in classes[name])
            return name.endswith(("Error", "Exception", "Timeout")) or name == "Exception"

        def in_family(name: str, seen=()) -> bool:
            if name == "StepError":
                return True
            return (
                name in classes
                and name not in seen
                and any(in_family(b, (*seen, name)) for b in classes[name])
            )

        errors = sorted(n for n in classes if is_error(n))
        return errors, [n for n in errors if not in_family(n) and n != "StepError"]


LIBRARIES = ("store", "dataset", "reading")  # components/ packages that are not steps
CORE = ("common", "images")  # what every step may use; imports nothing above it


def layer(module: str) -> int:
    """0 core, 1 a library, 2 a step, 3 the pipeline (DAG, CLI, web page)."""
    parts = module.split(".")
    if parts[0] == "pipeline":
        return 3
    if len(parts) == 1 or parts[1] in CORE:
        return 0
    return 1 if parts[1] in LIBRARIES else 2


def _base_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def _imported(node: ast.AST, module: str) -> list[tuple[str, list[str]]]:
    if isinstance(node, ast.Import):
        return [(alias.name, []) for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parent = module.split(".")[: -node.level]
            base = ".".join(parent + ([base] if base else []))
        return [(base, [alias.name for alias in node.names])]
    return []


def load(root: Path = ROOT) -> Shape:
    modules = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            name = name.removesuffix(".__init__")
            text = path.read_text()
            modules.append(Module(name, path, len(text.splitlines()), ast.parse(text)))
    shape = Shape(modules)
    known = {m.name for m in modules}
    for module in modules:
        targets = set()
        for node in ast.walk(module.tree):
            for target, names in _imported(node, module.name):
                for candidate in [f"{target}.{n}" for n in names] + [target]:
                    if candidate in known and candidate != module.name:
                        targets.add(candidate)
                        break
        shape.imports[module.name] = targets
    return shape


def report(shape: Shape) -> str:
    lengths = shape.function_lengths()
    deciles = statistics.quantiles(lengths, n=10)
    errors, outside = shape.error_classes()
    lines = [
        f"modules: {len(shape.modules)}, lines: {sum(m.lines for m in shape.modules)}",
        f"import cycles: {len(shape.cycles())}",
        *(f"  {' <-> '.join(group)}" for group in shape.cycles()),
        f"upward imports: {len(shape.upward())}",
        *(f"  {a} -> {b}" for a, b in shape.upward()),
        f"private kfp names outside {ADAPTER}: {len(shape.private_kfp())}",
        *(f"  {place}" for place in shape.private_kfp()),
        f"modules over {MAX_MODULE_LINES} lines: {len(shape.big_modules())}",
        *(f"  {lines:4d} {path}" for path, lines in shape.big_modules()),
        f"functions: {len(lengths)}, lines median {statistics.median(lengths):.0f},"
        f" p90 {deciles[-1]:.0f}, max {max(lengths)}",
        f"components/common share of components' lines: {shape.common_share():.1%}",
        f"error classes: {len(errors)}, outside the StepError family: {len(outside)}",
        *(f"  {name}" for name in outside),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(load()))
