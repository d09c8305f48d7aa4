"""Graph invariants, checked after every build (like torch.fx's Graph.lint). A failure is a bug in
cnndsl, not in the spec, so it raises GraphInvariantError naming the node."""

from __future__ import annotations

import networkx as nx

from ..ops import REGISTRY
from .model import INPUT, Graph


class GraphInvariantError(AssertionError):
    pass


def check_invariants(graph: Graph) -> None:
    seen: set[str] = set()
    for node in graph.nodes():
        where = f"node `{node.name}` ({node.location})"
        if node.op == INPUT:
            _require(not node.inputs and node.shape is not None, f"{where}: an input has no producers and a shape")
        else:
            op = node.op
            _require(REGISTRY.get(op.name) is op, f"{where}: op `{op.name}` is not the registered one")
            _require(isinstance(node.params, op.Params), f"{where}: params are not {op.Params.__name__}")
            _require(len(node.inputs) >= op.min_inputs and (op.max_inputs is None or len(node.inputs) <= op.max_inputs),
                     f"{where}: {len(node.inputs)} inputs for `{op.name}`")
        for source in node.inputs:
            _require(source in seen, f"{where}: input `{source}` is not defined before it")
        seen.add(node.name)
    _require(nx.is_directed_acyclic_graph(graph.dag), "the graph has a cycle")
    for name, target in {**graph.inputs, **graph.outputs}.items():
        _require(target in graph, f"input/output `{name}` names missing node `{target}`")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise GraphInvariantError(message)
