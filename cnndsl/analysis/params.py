"""Parameter count per node: learnable parameters, the trainable part, and buffers."""

from __future__ import annotations

from ..diagnostics import DiagnosticSink
from ..graph.model import INPUT, Graph
from ..ops import REGISTRY
from .common import analysed_nodes


def run(graph: Graph, sink: DiagnosticSink) -> None:
    for node, facts in analysed_nodes(graph):
        if node.op == INPUT:
            continue
        facts.params = REGISTRY[node.op].param_count(facts.attrs)
        facts.trainable = 0 if getattr(node.params, "frozen", False) else facts.params.params
