"""Memory: the peak of live activations when running inference in topological order (a tensor is
freed after its last consumer; outputs stay). Each node's output elements are `NodeFacts.elements`."""

from __future__ import annotations

from ..graph.model import Graph


def peak_live_elements(graph: Graph) -> int:
    """Largest sum of live tensors during an inference pass in the graph's order."""
    running = graph.inference_nodes()  # training heads do not run
    remaining = {name: sum(reader in running for reader in graph.dag.successors(name)) for name in graph.dag.nodes}
    keep = set(graph.inference_outputs.values())

    def elements(name: str) -> int:
        facts = graph.checked(name)
        return facts.elements if facts else 0

    live = peak = 0
    for node in graph.nodes():
        if node.name not in running:
            continue
        live += elements(node.name)
        peak = max(peak, live)
        for source in node.inputs:
            remaining[source] -= 1
            if remaining[source] == 0 and source not in keep:
                live -= elements(source)
    return peak
