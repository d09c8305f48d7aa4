"""Multiply-accumulates per node, in each peer's counting convention (`ops.base.Macs` says how each
counts; docs/fidelity.md checks the totals against the published figures)."""

from __future__ import annotations

from ..diagnostics import DiagnosticSink
from ..graph.model import INPUT, Graph
from ..ops import Convention
from .common import analysed_nodes

CONVENTIONS = tuple(c.value for c in Convention)


def run(graph: Graph, sink: DiagnosticSink) -> None:
    for node, facts in analysed_nodes(graph):
        if node.op != INPUT:
            facts.macs = node.op.macs(facts.attrs, facts.params.params)
