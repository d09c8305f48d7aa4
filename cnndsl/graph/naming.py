"""Naming: every layer and block instance gets a unique qualified name (`layer1.0.conv1`): `as` names
as written, automatic ones (`conv3`) that avoid them, repeats numbered from 0; a name given twice is E202.
Also which tensor names a body assigns where, for 'used before defined'."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..diagnostics import Code, DiagnosticSink, Location
from ..syntax import ast as A
from .model import Graph
from .scope import Frame


class Names:
    def __init__(self, graph: Graph, sink: DiagnosticSink):
        self.graph = graph
        self.sink = sink
        self.instances: dict[str, Location] = {}  # block instances by qualified name: their names are taken

    def auto_name(self, callee: str, frame: Frame) -> str:
        """`conv1`, `conv2`, ...: the next name for `callee` in this body that nothing else has taken."""
        n = frame.counters.get(callee, 0)
        while True:
            n += 1
            name = f"{callee}{n}"
            qualified = frame.prefix + name
            if name not in frame.reserved and qualified not in self.graph and qualified not in self.instances:
                frame.counters[callee] = n
                return name

    def taken(self, qualified: str, where: Location, frame: Frame) -> bool:
        """Whether a layer or block instance already has this name (E202 when it does)."""
        other = self.graph.node(qualified).location if qualified in self.graph else self.instances.get(qualified)
        if other is not None:
            self.sink.emit(Code.E202, f"layer name `{qualified}` is already used at {other}", where,
                           hint="names given with `as` must be unique in their block", notes=frame.trail)
            return True
        return False


def _walk(statements: Iterable[A.Node]) -> Iterable[A.Node]:
    for stmt in statements:
        yield stmt
        if isinstance(stmt, A.If):
            yield from _walk(stmt.then)
            yield from _walk(stmt.otherwise)


def aliases(statements: Iterable[A.Node]) -> set[str]:
    """The `as` names a body gives: automatic names of the same body avoid them."""
    names: set[str] = set()
    for stmt in _walk(statements):
        chain = getattr(stmt, "chain", None)
        if chain is not None:
            names.update(layer.alias.name for layer in chain.layers if layer.alias)
    return names


def assignments(statements: Sequence[A.Node], path: str) -> dict[str, tuple[int, Location]]:
    """Tensor names each statement of a body assigns, for 'used before defined' diagnostics."""
    result: dict[str, tuple[int, Location]] = {}
    for index, stmt in enumerate(statements):
        for inner in _walk([stmt]):
            if isinstance(inner, A.Assign | A.OutputAssign):
                target = inner.target if isinstance(inner, A.Assign) else inner.name
                if target.name not in result:
                    result[target.name] = (index, Location(path, target.line, target.col))
    return result
