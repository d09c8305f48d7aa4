"""Parameter count per node: learnable parameters, the trainable part, and buffers."""

from __future__ import annotations

from ..diagnostics import DiagnosticSink
from ..graph.model import INPUT, Graph
from ..ops import REGISTRY
from .common import analysed_nodes


def run(graph: Graph, sink: DiagnosticSink) -> None:
    for node, meta, inputs in analysed_nodes(graph):
        if node.op == INPUT:
            meta["params"] = meta["trainable"] = meta["buffers"] = 0
            continue
        count = REGISTRY[node.op].param_count(node.params, inputs, meta["shape"])
        meta["params"], meta["buffers"] = count.params, count.buffers
        meta["trainable"] = 0 if getattr(node.params, "frozen", False) else count.params
