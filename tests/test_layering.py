"""The import graph has no upward arrow: nothing below ``lda_opt.learning`` imports it.

Every ``import`` / ``from ... import`` statement of every module of the package is read with
``ast`` (also the ones inside functions, which run lazily), relative imports resolved.  Only
the learning systems themselves, the experiments built on them (``lda_opt.experiments``) and
the command line above them (``lda_opt.commands``, ``lda_opt.cli``) may import
``lda_opt.learning``; the tasks (``lda_opt.tasks``) sit below
everything that builds problems from them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lda_opt"

#: the modules above lda_opt.learning (and learning itself)
ABOVE_LEARNING = ("lda_opt.learning", "lda_opt.experiments", "lda_opt.commands", "lda_opt.cli")
#: what lda_opt.tasks must never import: every module that builds problems from the tasks
ABOVE_TASKS = ("lda_opt.learning", "lda_opt.commands", "lda_opt.cli", "lda_opt.instances", "lda_opt.experiments")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The absolute names of the modules (or module members) ``path`` imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_import_reader_sees_relative_and_lazy_imports():
    g = _graph()
    assert "lda_opt.tasks" in g["lda_opt.learning.config"]  # from ..tasks import ... (relative)
    assert "lda_opt.learning" in g["lda_opt.commands.solve"]  # inside a function (lazy)
    assert "lda_opt.instances" in g["lda_opt.experiments.compare"]  # a downward arrow


def test_nothing_below_learning_imports_learning():
    bad = {m: sorted(i for i in imps if _within(i, ("lda_opt.learning",)))
           for m, imps in _graph().items() if not _within(m, ABOVE_LEARNING)}
    assert not {m: v for m, v in bad.items() if v}, f"upward imports: {bad}"


def test_the_tasks_import_nothing_above_them():
    bad = {m: sorted(i for i in imps if _within(i, ABOVE_TASKS))
           for m, imps in _graph().items() if _within(m, ("lda_opt.tasks",))}
    assert not {m: v for m, v in bad.items() if v}, f"upward imports: {bad}"


def test_nothing_below_the_experiments_imports_them():
    """``lda_opt.experiments`` sits on top of the library (only the commands and the CLI use
    it): the learning systems, the solvers and the checker never import an experiment."""
    above = ("lda_opt.experiments", "lda_opt.commands", "lda_opt.cli")
    bad = {m: sorted(i for i in imps if _within(i, ("lda_opt.experiments",)))
           for m, imps in _graph().items() if not _within(m, above)}
    assert not {m: v for m, v in bad.items() if v}, f"upward imports: {bad}"
