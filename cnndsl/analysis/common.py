"""Helpers shared by the analysis passes."""

from __future__ import annotations

from collections.abc import Iterator

from ..graph.facts import NodeFacts
from ..graph.model import Graph, Node


def analysed_nodes(graph: Graph) -> Iterator[tuple[Node, NodeFacts]]:
    """Nodes the shape pass checked (no error here or upstream), with their facts, in graph order."""
    checked = graph.checked
    for node in graph.nodes():
        facts = checked(node.name)
        if facts is not None:
            yield node, facts
