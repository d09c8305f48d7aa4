"""Analysis passes over the graph, in topological order, one pass per file. Each records what it finds
in the nodes' `NodeFacts` (graph/facts.py): attributes and shape, parameters, MACs, receptive field."""

from __future__ import annotations

from ..diagnostics import DiagnosticSink
from ..graph.model import Graph
from . import lints, macs, params, receptive_field, shapes, sizes

PASSES = (shapes.run, params.run, macs.run, receptive_field.run)


def analyse(graph: Graph, sink: DiagnosticSink) -> None:
    """Run every pass; lints only when the spec has no errors (they would describe a broken graph); then,
    where the input size breaks a size rule, the nearest sizes that fit (I104)."""
    for run in PASSES:
        run(graph, sink)
    if not sink.has_errors:
        lints.run(graph, sink)
    sizes.size_hints(graph, sink)
