"""Shape inference: each node's per-sample output shape, from its op's shape rule."""

from __future__ import annotations

from ..diagnostics import DiagnosticSink
from ..graph.model import INPUT, Graph
from ..limits import MAX_INTEGER
from ..ops import REGISTRY, ShapeError
from ..ops.base import Shape, fmt_shape


def run(graph: Graph, sink: DiagnosticSink) -> None:
    for node in graph.nodes():
        meta = graph.meta(node.name)
        if node.op == INPUT:
            meta["shape"], meta["label"] = node.shape, INPUT
            continue
        known = [graph.meta(source).get("shape") for source in node.inputs]
        meta["shape"] = None
        if any(shape is None for shape in known):
            continue  # an upstream error was already reported
        inputs: list[Shape] = [shape for shape in known if shape is not None]
        op = REGISTRY[node.op]
        try:
            shape = op.infer_shape(node.params, inputs)
            meta["label"] = op.label(node.params, inputs)
        except ShapeError as exc:
            sink.emit(exc.code, f"{exc.message} at `{node.name}`", node.location, exc.hint, node.trail)
            continue
        if any(d > MAX_INTEGER for d in shape):
            sink.emit("E304", f"output shape of `{node.name}` has a size past {MAX_INTEGER:,} (2^63 - 1)",
                      node.location, "no tensor library indexes a tensor this large", node.trail)
            continue
        if any(d <= 0 for d in shape):
            sink.emit("E304", f"output shape {fmt_shape(shape)} of `{node.name}` has a non-positive size "
                      f"(input {' and '.join(fmt_shape(s) for s in inputs)})", node.location,
                      "the input is too small for this layer", node.trail)
            continue
        meta["shape"] = shape
