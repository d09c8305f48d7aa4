"""Backends: each lowers the checked graph through a converter table keyed by op kind.

Before lowering anything a backend asks ``unsupported_ops`` for every node its table cannot convert
and reports them all at once, located at the layers that use them (as TVM's Relax frontends do).
"""

from __future__ import annotations

from collections.abc import Container

from ..diagnostics import Diagnostic
from ..graph.model import INPUT, Graph
from ..ops import REGISTRY


def unsupported_ops(graph: Graph, table: Container[str], backend: str) -> list[Diagnostic]:
    """One E600 per layer whose op kind has no converter in `table`."""
    found = []
    for node in graph.nodes():
        if node.op == INPUT:
            continue
        kind = REGISTRY[node.op].kind
        if kind not in table:
            found.append(graph.diagnostic("E600", f"op `{node.op}` of `{node.name}` has no {backend} lowering",
                                          node.location, f"the {backend} backend supports: "
                                          f"{', '.join(sorted(k for k in REGISTRY if k in table))}", node.trail))
    return found
