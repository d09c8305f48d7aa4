"""Memory: per-node output elements, and the peak of live activations when running inference in
topological order (a tensor is freed after its last consumer; outputs stay)."""

from __future__ import annotations

from math import prod

from ..diagnostics import DiagnosticSink
from ..graph.model import Graph
from .common import analysed_nodes


def run(graph: Graph, sink: DiagnosticSink) -> None:
    for _node, meta, _inputs in analysed_nodes(graph):
        meta["elements"] = prod(meta["shape"])


def peak_live_elements(graph: Graph) -> int:
    """Largest sum of live tensors during an inference pass in the graph's order."""
    remaining = {name: graph.dag.out_degree(name) for name in graph.dag.nodes}
    keep = set(graph.outputs.values())
    live = peak = 0
    for node in graph.nodes():
        live += graph.meta(node.name).get("elements", 0)
        peak = max(peak, live)
        for source in node.inputs:
            remaining[source] -= 1
            if remaining[source] == 0 and source not in keep:
                live -= graph.meta(source).get("elements", 0)
    return peak
