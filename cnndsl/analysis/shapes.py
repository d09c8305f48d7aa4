"""Shape inference: each node's op resolves its arguments against its input shapes into `Attrs` (the
output shape and the op's derived geometry), recorded as the node's facts (graph/resolve.py). Nodes the
elaborator resolved already, for a shape function in an expression, are not resolved twice."""

from __future__ import annotations

from ..diagnostics import DiagnosticSink
from ..graph.model import Graph
from ..graph.resolve import resolve_node


def run(graph: Graph, sink: DiagnosticSink) -> None:
    for node in graph.nodes():
        if not graph.recorded(node.name):
            resolve_node(graph, node, sink)
