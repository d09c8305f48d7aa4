"""Shape inference: each node's op resolves its arguments against its input shapes into `Attrs` (the
output shape and the op's derived geometry), recorded as the node's facts."""

from __future__ import annotations

from ..diagnostics import DiagnosticSink
from ..graph.facts import NodeFacts, Unchecked
from ..graph.model import INPUT, Graph
from ..layout import fmt_shape
from ..limits import MAX_INTEGER
from ..ops import REGISTRY, Attrs, OpParams, ShapeError
from ..ops.base import NoParams, Shape

_NO_PARAMS = NoParams()


def run(graph: Graph, sink: DiagnosticSink) -> None:
    for node in graph.nodes():
        if node.op == INPUT:
            assert node.shape is not None  # graph.invariants: inputs have a shape
            graph.record(node.name, NodeFacts(Attrs(_NO_PARAMS, (), node.shape), INPUT))
            continue
        known = [graph.checked(source) for source in node.inputs]
        if any(facts is None for facts in known):
            graph.record(node.name, Unchecked.UPSTREAM)  # the error upstream was reported there
            continue
        inputs: tuple[Shape, ...] = tuple(facts.shape for facts in known if facts is not None)
        op = REGISTRY[node.op]
        assert isinstance(node.params, OpParams)
        try:
            attrs = op.resolve(node.params, inputs)
            label = op.label(attrs)
        except ShapeError as exc:
            sink.emit(exc.code, f"{exc.message} at `{node.name}`", node.location, exc.hint, node.trail)
            graph.record(node.name, Unchecked.REJECTED)
            continue
        shape = attrs.out
        if any(d > MAX_INTEGER for d in shape):
            sink.emit("E304", f"output shape of `{node.name}` has a size past {MAX_INTEGER:,} (2^63 - 1)",
                      node.location, "no tensor library indexes a tensor this large", node.trail)
            graph.record(node.name, Unchecked.REJECTED)
            continue
        if any(d <= 0 for d in shape):
            sink.emit("E304", f"output shape {fmt_shape(shape)} of `{node.name}` has a non-positive size "
                      f"(input {' and '.join(fmt_shape(s) for s in inputs)})", node.location,
                      "the input is too small for this layer", node.trail)
            graph.record(node.name, Unchecked.REJECTED)
            continue
        graph.record(node.name, NodeFacts(attrs, label))
