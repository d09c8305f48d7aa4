"""Backends: each lowers the checked graph, op by op, asking each node's op how it lowers.

A backend keeps one table of hand-written lowerings keyed by op class (`Lowerings`); an op without an
entry that is an element-wise formula (`Op.compose`, ops/compose.py) is lowered through the backend's
primitives. Before lowering anything a backend asks ``unsupported_ops`` for every node it cannot lower
and reports them all at once, located at the layers that use them (as TVM's Relax frontends do).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from ..diagnostics import Code, Diagnostic
from ..graph.model import INPUT, Graph
from ..ops import REGISTRY, Op

C = TypeVar("C")


class Lowerings(Generic[C]):
    """A backend's hand-written lowerings (converters of type C), keyed by op class. An op class without an
    entry takes its nearest base class's, so a subclass of an op lowers as its base unless it says otherwise."""

    def __init__(self, entries: Mapping[type[Op], C]):
        self.entries = dict(entries)

    def find(self, op: Op) -> C | None:
        """The hand-written lowering of `op`, or None (then it lowers by its formula, if it has one)."""
        for cls in type(op).__mro__:
            if cls in self.entries:
                return self.entries[cls]
        return None

    def lowers(self, op: Op) -> bool:
        return self.find(op) is not None or op.composes

    def without(self, *classes: type[Op]) -> Lowerings[C]:
        """This table less some entries (tests: what a backend missing a lowering reports)."""
        return Lowerings({cls: convert for cls, convert in self.entries.items() if cls not in classes})


def unsupported_ops(graph: Graph, lowers: Callable[[Op], bool], backend: str) -> list[Diagnostic]:
    """One E600 per layer whose op the backend cannot lower (`lowers(op)` false)."""
    found = []
    for node in graph.nodes():
        if node.op == INPUT or lowers(node.op):
            continue
        supported = ", ".join(sorted(name for name, op in REGISTRY.items() if name == op.kind and lowers(op)))
        found.append(graph.diagnostic(Code.E600, f"op `{node.op.name}` of `{node.name}` has no {backend} lowering",
                                      node.location, f"the {backend} backend supports: {supported}", node.trail))
    return found
