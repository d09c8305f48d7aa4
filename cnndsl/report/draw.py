"""The network as a picture (`cnndsl draw`): Graphviz DOT written here, rendered by Graphviz's `dot`.

One node per layer (name, op, output shape, parameters, receptive field), block instances as nested
clusters, or with `depth` collapsed into one node each (the report's `--depth` rows); edges labelled with
the shape they carry; each node's colour its share of the network's MACs. DOT is plain text, so it is
written without Graphviz; SVG, PNG and PDF need the `dot` program (Debian: `apt install graphviz`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..diagnostics import Option, UsageError
from ..graph.model import Graph
from ..layout import fmt_shape
from . import model as M

FORMATS = ("svg", "png", "pdf", "dot")
# MAC share -> fill colour, light to dark (ColorBrewer's Oranges): the costly layers stand out
SHADES = ((0.0, "#ffffff"), (0.005, "#fff5eb"), (0.02, "#fdd0a2"), (0.05, "#fdae6b"), (0.1, "#fd8d3c"),
          (0.2, "#e6550d"))
TIMEOUT_SEC = 120


def to_dot(graph: Graph, report: M.Report) -> str:
    """The DOT text of `report`'s rows (full, or collapsed with `--depth`) over `graph`'s structure."""
    rows = {layer.name: layer for layer in report.layers}
    row_of = _row_of(graph, rows)
    total = report.totals.macs or 0
    lines = ["digraph network {", '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, '
             f'label="{_escape(report.network)}", labelloc=t];',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8, color="#555555"];']
    for name, shape in report.inputs.items():
        label = f"{_escape(name)}\\n{fmt_shape(shape)}"
        lines.append(f'  {_id(graph.inputs[name])} [shape=ellipse, fillcolor="#deebf7", label="{label}"];')
    clusters = _clusters(graph, rows)
    _emit_nodes(lines, "", clusters, rows, total, indent="  ")
    drawn: set[tuple[str, str]] = set()
    for layer in report.layers:
        for source in layer.inputs:
            tail = row_of.get(source, source)
            if tail == layer.name or (tail, layer.name) in drawn:
                continue
            drawn.add((tail, layer.name))
            shape = rows[tail].shape if tail in rows else report.inputs.get(_input_name(graph, tail), [])
            lines.append(f'  {_id(tail)} -> {_id(layer.name)} [label="{fmt_shape(shape) if shape else ""}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot: str, path: Path) -> None:
    """Write `dot` as `path`'s format (by its suffix): the DOT text itself, or Graphviz's rendering of it."""
    kind = path.suffix.lstrip(".").lower()
    if kind not in FORMATS:
        raise UsageError(f"cannot tell the picture's format from {path}: name it .svg, .png, .pdf or .dot")
    if kind == "dot":
        path.write_text(dot)
        return
    program = shutil.which("dot")
    if program is None:
        raise UsageError(f"drawing {path.name} needs Graphviz's `dot` program, which is not installed here "
                         "(Debian/Ubuntu: apt install graphviz; macOS: brew install graphviz); "
                         f"`-o {path.with_suffix('.dot').name}` writes the DOT text without it")
    try:
        done = subprocess.run([program, f"-T{kind}", "-o", str(path)], input=dot.encode(), capture_output=True,
                              timeout=TIMEOUT_SEC, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UsageError(f"Graphviz took more than {TIMEOUT_SEC} s on this network; try drawing each block instance "
                         "as one node (depth 1)", option=Option.DEPTH) from exc
    if done.returncode != 0:
        raise UsageError(f"Graphviz could not draw {path}: {done.stderr.decode(errors='replace').strip()[:300]}")


def _row_of(graph: Graph, rows: dict[str, M.Layer]) -> dict[str, str]:
    """Each layer -> the row that shows it: itself, or the collapsed block instance holding it."""
    result = {}
    for node in graph.dag.nodes:
        row = node if node in rows else next((unit.name for unit in graph.enclosing(node) if unit.name in rows), None)
        if row is not None:
            result[node] = row
    return result


def _clusters(graph: Graph, rows: dict[str, M.Layer]) -> dict[str, list[str]]:
    """Cluster (instance name; "" for the network) -> its direct members: rows and inner clusters."""
    members: dict[str, list[str]] = {"": []}
    for name in rows:
        parent = _parent_instance(graph, name, rows)
        members.setdefault(parent, []).append(name)
        while parent:  # make sure every enclosing instance is listed in its own parent
            grand = _parent_instance(graph, parent, rows)
            siblings = members.setdefault(grand, [])
            if f"cluster:{parent}" not in siblings:
                siblings.append(f"cluster:{parent}")
            parent = grand
    return members


def _parent_instance(graph: Graph, name: str, rows: dict[str, M.Layer]) -> str:
    """The innermost block instance drawn as a box around `name` ("" for the network itself)."""
    return next((unit.name for unit in reversed(graph.enclosing(name)) if unit.name not in rows), "")


def _emit_nodes(lines: list[str], cluster: str, clusters: dict[str, list[str]], rows: dict[str, M.Layer],
                total: int, indent: str) -> None:
    for member in clusters.get(cluster, []):
        if member.startswith("cluster:"):
            inner = member.removeprefix("cluster:")
            lines.append(f'{indent}subgraph "cluster_{_escape(inner)}" {{')
            lines.append(f'{indent}  label="{_escape(inner)}"; style="rounded,dashed"; color="#888888";')
            _emit_nodes(lines, inner, clusters, rows, total, indent + "  ")
            lines.append(f"{indent}}}")
            continue
        layer = rows[member]
        rf = f"\\nRF {'x'.join(map(str, dict.fromkeys(layer.rf.size)))}" if layer.rf else ""
        params = f"  {layer.params:,} params" if layer.params else ""
        count = f" ({layer.layers} layers)" if layer.layers > 1 else ""
        label = f"{_escape(layer.name)}\\n{_escape(layer.op)}{count}\\n{fmt_shape(layer.shape)}{params}{rf}"
        lines.append(f'{indent}{_id(layer.name)} [label="{label}", fillcolor="{_shade(layer.macs, total)}"];')


def _shade(macs: int, total: int) -> str:
    share = macs / total if total else 0.0
    return next(colour for limit, colour in reversed(SHADES) if share >= limit)


def _input_name(graph: Graph, node: str) -> str:
    return next((name for name, n in graph.inputs.items() if n == node), node)


def _id(name: str) -> str:
    return f'"{_escape(name)}"'


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
