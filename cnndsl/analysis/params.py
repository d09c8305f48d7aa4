"""Parameter count per node: learnable parameters, the trainable part, and buffers."""

from __future__ import annotations

from ..diagnostics import DiagnosticSink
from ..graph.model import INPUT, Graph
from ..ops.base import TrainableParams
from .common import analysed_nodes


def run(graph: Graph, sink: DiagnosticSink) -> None:
    for node, facts in analysed_nodes(graph):
        if node.op == INPUT:
            continue
        facts.params = node.op.param_count(facts.attrs)
        frozen = isinstance(node.params, TrainableParams) and node.params.frozen
        facts.trainable = 0 if frozen else facts.params.params
