"""Resolving a node: its op's shape rule applied once, to the shapes of its inputs. The result, the
node's `Attrs` (output shape and derived geometry), starts its facts. The shape pass resolves every node;
the elaborator resolves nodes as soon as an expression asks for a tensor's shape (`channels(in)`)."""

from __future__ import annotations

from ..diagnostics import Code, DiagnosticSink
from ..layout import fmt_shape
from ..limits import MAX_INTEGER
from ..ops import Attrs, OpParams, ShapeError
from ..ops.base import NoParams, Shape
from .facts import NodeFacts, Unchecked
from .model import INPUT, Graph, Node

_NO_PARAMS = NoParams()


def resolve_node(graph: Graph, node: Node, sink: DiagnosticSink) -> None:
    """Record node's facts: its op's arguments resolved against its inputs' shapes (Attrs, output shape
    included), or why it has none: its shape rule rejected its inputs (reported here), or an input is
    unchecked (reported there). Its inputs must be resolved already (graph order guarantees it)."""
    if node.op == INPUT:
        assert node.shape is not None  # graph.invariants: inputs have a shape
        graph.record(node.name, NodeFacts(Attrs(_NO_PARAMS, (), node.shape), INPUT.name))
        return
    known = [graph.checked(source) for source in node.inputs]
    if any(facts is None for facts in known):
        graph.record(node.name, Unchecked.UPSTREAM)  # the error upstream was reported there
        return
    inputs: tuple[Shape, ...] = tuple(facts.shape for facts in known if facts is not None)
    op = node.op
    assert isinstance(node.params, OpParams)
    try:
        attrs = op.resolve(node.params, inputs)
        label = op.label(attrs)
    except ShapeError as exc:
        notes = (*node.trail, *divergence(graph, node, exc.code))
        sink.emit(exc.code, f"{exc.message} at `{node.name}`", node.location, exc.hint, notes)
        graph.record(node.name, Unchecked.REJECTED)
        return
    shape = attrs.out
    if any(d > MAX_INTEGER for d in shape):
        sink.emit(Code.E304, f"output shape of `{node.name}` has a size past {MAX_INTEGER:,} (2^63 - 1)",
                  node.location, "no tensor library indexes a tensor this large", node.trail)
        graph.record(node.name, Unchecked.REJECTED)
        return
    if any(d <= 0 for d in shape):
        sink.emit(Code.E304, f"output shape {fmt_shape(shape)} of `{node.name}` has a non-positive size "
                  f"(input {' and '.join(fmt_shape(s) for s in inputs)})", node.location,
                  "the input is too small for this layer", node.trail)
        graph.record(node.name, Unchecked.REJECTED)
        return
    graph.record(node.name, NodeFacts(attrs, label))


def divergence(graph: Graph, node: Node, code: Code) -> list[str]:
    """Where the paths merged at `node` stop agreeing, for a channel (E301) or size (E302) mismatch: from the
    nearest common ancestor of two inputs of different shapes, the first layer on each path that changes
    what differs (a convolution without padding, say). The merge is where the error shows; that layer is
    usually where it is."""
    if code not in (Code.E301, Code.E302) or len(node.inputs) < 2:
        return []
    part = (lambda shape: shape[:1]) if code == Code.E301 else (lambda shape: shape[1:])
    shapes = [graph.checked(source) for source in node.inputs]
    first = shapes[0]
    other = next((i for i, facts in enumerate(shapes) if facts and first and part(facts.shape) != part(first.shape)),
                 None)
    if other is None:
        return []
    left, right = _path(graph, node.inputs[0]), _path(graph, node.inputs[other])
    common = next((name for name in right if name in set(left)), None)
    if common is None:
        return []
    origin = part(graph.shape(common))
    notes = []
    for path in (left, right):
        steps = list(reversed(path[:path.index(common)]))  # from the common ancestor towards the merge
        before = graph.shape(common)
        for name in steps:
            after = graph.shape(name)
            if part(after) != origin:
                notes.append(f"the paths diverge at `{name}` ({fmt_shape(before)} -> {fmt_shape(after)}), "
                             f"{graph.node(name).location}")
                break
            before = after
    return notes


def _path(graph: Graph, start: str) -> list[str]:
    """`start` and its ancestors along first inputs, nearest first, while they are checked."""
    path = [start]
    node = graph.node(start)
    while node.inputs and graph.checked(node.inputs[0]) is not None:
        path.append(node.inputs[0])
        node = graph.node(node.inputs[0])
    return path
