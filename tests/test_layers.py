"""Import layers, enforced: arrows between fedhar's packages run one way.

Layer order, lowest first (a module may import its own layer and those below):

    core (exceptions, schema, registry, checks, config, configdoc, hub, quiet, reporting) -> data -> drift -> models
    -> training -> distill -> federated -> {continual, transfer, smarthome, export} -> studies -> cli

- A ``fedhar/<pkg>/config.py`` imports, at module level, only light core modules (exceptions,
  schema, registry), other config modules, the standard library and yaml, so that
  ``import fedhar.config`` (which composes them) stays free of torch. Its deferred imports
  (validation against a registry) follow the layer order like any other.
- The root ``fedhar/config.py`` may import every ``fedhar.<pkg>.config``; any layer may import it.
- Only ``fedhar/federated`` imports ``flwr``.
- No private ``_name`` is imported from another module.

Imports under ``if TYPE_CHECKING:`` never run and are not counted; deferred (in-function)
imports are, since they are dependencies all the same.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "fedhar"
CORE = {"fedhar", "fedhar.exceptions", "fedhar.schema", "fedhar.registry", "fedhar.checks", "fedhar.config", "fedhar.hub",
        "fedhar.reporting", "fedhar.configdoc",
        "fedhar.quiet"}
LIGHT_CORE = {"fedhar", "fedhar.exceptions", "fedhar.schema", "fedhar.registry"}
RANK = {"core": 0, "data": 1, "drift": 2, "models": 3, "training": 4, "distill": 5, "federated": 6,
        "continual": 7, "transfer": 7, "smarthome": 7, "export": 7, "studies": 8, "cli": 9}
CONFIG_THIRD_PARTY = {"yaml"}
HEAVY = ("torch", "transformers", "peft", "flwr", "matplotlib", "sklearn")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def unit(module: str) -> str:
    """The layer unit of a fedhar module: ``core``, a package name, or ``cli``."""
    parts = module.split(".")
    if ".".join(parts[:2]) in CORE or len(parts) == 1:
        return "core"
    return parts[1]


def is_config_module(module: str) -> bool:
    parts = module.split(".")
    return len(parts) == 3 and parts[2] == "config"


@dataclass
class Import:
    source: str  # importing module
    target: str  # imported module (fedhar module, or a third-party top-level name)
    names: tuple[str, ...]  # names taken with `from ... import`
    line: int
    module_level: bool

    def where(self) -> str:
        return f"{MODULES[self.source].relative_to(ROOT.parent)}:{self.line}"


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and ("TYPE_CHECKING" in ast.unparse(test))


def _resolve(source: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_pkg = source in MODULES and MODULES[source].name == "__init__.py"
    base = source.split(".")[: len(source.split(".")) - node.level + (1 if is_pkg else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(source: str, text: str | None = None) -> list[Import]:
    tree = ast.parse(MODULES[source].read_text() if text is None else text)
    out: list[Import] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_block(child):
                for sub in child.orelse:
                    visit(ast.Module(body=[sub], type_ignores=[]), module_level)
                continue
            if isinstance(child, ast.Import):
                out.extend(Import(source, a.name, (), child.lineno, module_level) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(source, child)
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    if sub in MODULES:  # `from fedhar.data import splits`: the submodule itself
                        out.append(Import(source, sub, (), child.lineno, module_level))
                    else:
                        out.append(Import(source, base, (a.name,), child.lineno, module_level))
            nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, module_level and not nested)

    visit(tree, True)
    return out


ALL = [imp for m in MODULES for imp in imports_of(m)]
INTERNAL = [imp for imp in ALL if imp.target.split(".")[0] == "fedhar"]


def check(violations: list[str]) -> None:
    """Fail listing each offending file:line and import once."""
    violations = list(dict.fromkeys(violations))
    if violations:
        pytest.fail(f"{len(violations)} violation(s):\n  " + "\n  ".join(violations), pytrace=False)


def test_the_walk_sees_the_tree():
    """Guard the test itself: it finds the modules and known imports."""
    assert {"fedhar.config", "fedhar.training.loop", "fedhar.federated.strategy", "fedhar.cli"} <= set(MODULES)
    assert any(i.source == "fedhar.training.loop" and i.target == "fedhar.training.config" for i in INTERNAL)
    assert unit("fedhar.reporting.run_dir") == "core" and unit("fedhar.data.loaders.hapt") == "data"
    assert set(RANK) >= {unit(m) for m in MODULES}, "a new package needs a place in the layer order"


def test_no_lower_layer_imports_a_higher_one():
    violations = []
    for imp in INTERNAL:
        src, dst = unit(imp.source), unit(imp.target)
        if imp.source == "fedhar.config" and is_config_module(imp.target):
            continue  # the root config composes every package's config section
        if RANK[dst] > RANK[src]:
            violations.append(f"{imp.where()} ({src}) imports {imp.target} ({dst}, a higher layer)")
    check(violations)


def test_no_two_packages_import_each_other():
    edges: dict[tuple[str, str], Import] = {}
    for imp in INTERNAL:
        src, dst = unit(imp.source), unit(imp.target)
        if src != dst and "core" not in (src, dst):
            edges.setdefault((src, dst), imp)
    violations = [f"{a} <-> {b}: {edges[a, b].where()} imports {edges[a, b].target}; "
                  f"{edges[b, a].where()} imports {edges[b, a].target}"
                  for (a, b) in edges if a < b and (b, a) in edges]
    check(violations)


def test_config_modules_import_only_light_modules():
    stdlib = sys.stdlib_module_names
    violations = []
    for imp in ALL:
        if not (is_config_module(imp.source) and imp.module_level):
            continue
        top = imp.target.split(".")[0]
        ok = (imp.target in LIGHT_CORE or is_config_module(imp.target)) if top == "fedhar" else (
            top in stdlib or top in CONFIG_THIRD_PARTY or top == "__future__")
        if not ok:
            violations.append(f"{imp.where()} imports {imp.target}: config modules import only "
                              f"{', '.join(sorted(LIGHT_CORE))}, other config modules, stdlib and yaml")
    check(violations)


def test_only_the_federated_package_imports_flwr():
    violations = [f"{imp.where()} imports {imp.target}" for imp in ALL
                  if imp.target.split(".")[0] == "flwr" and unit(imp.source) != "federated"]
    check(violations)


def test_no_private_name_is_imported_across_modules():
    violations = []
    for imp in INTERNAL:
        private = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
        private += [p for p in imp.target.split(".") if p.startswith("_") and not p.startswith("__")]
        if private and imp.target != imp.source:
            violations.append(f"{imp.where()} imports {', '.join(private)} from {imp.target}")
    check(violations)


def test_the_walk_reads_every_kind_of_import():
    """Relative, deferred, submodule and TYPE_CHECKING imports are resolved as the rules assume."""
    text = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fedhar.cli import main\n"
            "from . import loop\nfrom .loop import _x\n\ndef f():\n    import flwr\n")
    found = [(i.target, i.names, i.module_level) for i in imports_of("fedhar.training.planted", text)]
    assert found == [("typing", ("TYPE_CHECKING",), True), ("fedhar.training.loop", (), True),
                     ("fedhar.training.loop", ("_x",), True), ("flwr", (), False)]


@pytest.mark.parametrize("module", ["fedhar.config", "fedhar.checks", "fedhar.schema"])
def test_importing_the_config_loads_nothing_heavy(module):
    code = (f"import sys, {module}; heavy = [m for m in {HEAVY!r} if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"`import {module}` loaded {res.stdout.strip()} {res.stderr[-2000:]}"


@pytest.mark.parametrize("package", ["fedhar.data", "fedhar.models", "fedhar.training", "fedhar.distill", "fedhar.continual"])
def test_lazy_package_exports_resolve(package):
    """Packages re-export lazily (so their config modules stay light); every listed name exists."""
    import importlib

    mod = importlib.import_module(package)
    assert mod.__all__ and all(getattr(mod, name) is not None for name in mod.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getattr(mod, "nope")
