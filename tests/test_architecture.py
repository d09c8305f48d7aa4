"""The parts rules, checked on the source: which package may import which (the pipeline's arrows point one
way), the CLI a thin shell, nobody outside ops/ looking an op up by name, files of a readable size."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cnndsl"


def _modules() -> dict[str, Path]:
    """Every module of cnndsl by dotted name (`cnndsl.graph.model`)."""
    return {".".join(("cnndsl", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__"): path
            for path in PACKAGE.rglob("*.py")}


def _imports(module: str, path: Path) -> set[str]:
    """The cnndsl modules `module` imports, anywhere in it (lazy imports inside functions too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("cnndsl")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("cnndsl"):
                found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


# (importing part, parts it must not import, why)
RULES = [
    ("cnndsl.syntax", ("cnndsl.graph", "cnndsl.analysis", "cnndsl.backends", "cnndsl.report", "cnndsl.cli"),
     "syntax knows no graph"),
    ("cnndsl.ops", ("cnndsl.graph", "cnndsl.syntax", "cnndsl.analysis", "cnndsl.backends", "cnndsl.report",
                    "cnndsl.cli"), "ops know no graph or text"),
    ("cnndsl.analysis", ("cnndsl.backends", "cnndsl.cli"), "analysis needs no backend"),
    ("cnndsl.report", ("cnndsl.backends", "cnndsl.cli"), "reports need no backend"),
    ("cnndsl.runtime", ("cnndsl.backends", "cnndsl.graph", "cnndsl.cli"), "the runtime loads without the compiler"),
    ("cnndsl.measure", ("cnndsl.backends", "cnndsl.graph", "cnndsl.cli"), "measuring needs the runtime only"),
    ("cnndsl.backends", ("cnndsl.cli",), "backends know no CLI"),
    ("cnndsl.cli", ("cnndsl.graph", "cnndsl.backends", "cnndsl.report.assemble", "cnndsl.analysis"),
     "the CLI calls the API"),
]


@pytest.mark.parametrize(("part", "forbidden", "why"), RULES, ids=[rule[0] for rule in RULES])
def test_imports_follow_the_pipeline(part: str, forbidden: tuple[str, ...], why: str) -> None:
    broken = sorted(f"{module} imports {name}" for module, path in _modules().items()
                    if module == part or module.startswith(part + ".")
                    for name in _imports(module, path) if name.startswith(forbidden))
    assert broken == [], why


def test_no_op_is_looked_up_by_name_outside_ops() -> None:
    """A node carries its op: passes and backends ask it (`node.op.param_count(...)`)."""
    lookups = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                     if "ops" not in path.relative_to(PACKAGE).parts[:1] and re.search(r"REGISTRY\[", path.read_text()))
    assert lookups == []


@pytest.mark.parametrize("folder", ["cli", "graph"])
def test_files_stay_readable(folder: str) -> None:
    long = {str(path.relative_to(PACKAGE)): count for path in (PACKAGE / folder).rglob("*.py")
            if (count := len(path.read_text().splitlines())) > 400}
    assert long == {}


def test_diagnostic_codes_are_named_by_the_enum() -> None:
    """Codes are `Code.E300`, declared once with their severity, category and fix (diagnostics.py): no
    string literal that a typo would silently turn into another code."""
    literal = re.compile(r"""(?<![\w{])["'][EWI][0-9]{3}["']""")
    found = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                   if path.name != "diagnostics.py" and literal.search(path.read_text()))
    assert found == []


def test_benchmarks_use_cnndsl_as_an_installed_package_would() -> None:
    """No sys.path edits, no private names of cnndsl and no test modules: a benchmark runs what a user can
    run."""
    benchmarks = PACKAGE.parent / "benchmarks"
    private = re.compile(r"from cnndsl[\w.]* import [^\n]*\b_[a-z]\w*|cnndsl(\.\w+)*\._[a-z]|^\s*(from|import) tests\b",
                         re.MULTILINE)
    found = sorted(f"{path.name}: {'sys.path' if 'sys.path' in text else private.search(text).group()}"  # type: ignore[union-attr]
                   for path in benchmarks.glob("*.py") if "sys.path" in (text := path.read_text())
                   or private.search(text))
    assert found == []
