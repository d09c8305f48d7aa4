"""Helpers shared by the analysis passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..graph.model import Graph, Node
from ..ops.base import Shape


def analysed_nodes(graph: Graph) -> Iterator[tuple[Node, dict[str, Any], list[Shape]]]:
    """Nodes whose shape is known (no upstream error), with their meta and input shapes."""
    for node in graph.nodes():
        meta = graph.meta(node.name)
        if meta.get("shape") is None:
            continue
        yield node, meta, [graph.meta(source)["shape"] for source in node.inputs]
