"""Helpers shared by the analysis passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..graph.model import Graph, Node
from ..ops.base import Shape


def analysed_nodes(graph: Graph) -> Iterator[tuple[Node, dict[str, Any], list[Shape]]]:
    """Nodes whose shape is known (no upstream error), with their meta and input shapes."""
    meta_of = graph.meta
    for node in graph.nodes():
        meta = meta_of(node.name)
        if meta.get("shape") is None:
            continue
        yield node, meta, [meta_of(source)["shape"] for source in node.inputs]
