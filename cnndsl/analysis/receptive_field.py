"""Receptive fields over DAGs: size, effective stride and effective padding per spatial axis.

Convention (Araujo, Norris and Sim, Distill 2019): output position i of a tensor sees the input
positions [-P + i*S, -P + i*S + r). Through a layer reading `k` positions at stride `s` from
`-p + j*s`: r += (k-1)*S, S *= s, P += p*S. Up-sampling makes S and P fractions (kept exact); r is
then the exact extent and the reported size is the widest window in whole pixels, ceil(r).
Where paths merge, the field is the union of the paths' fields; paths whose centres or strides
differ are misaligned (W103).
"""

from __future__ import annotations

from ..diagnostics import Code, DiagnosticSink
from ..graph.facts import INPUT_AXIS, AxisField, Field, exact
from ..graph.model import INPUT, Graph, Node
from ..layout import Shape, spatial, spatial_rank
from ..ops.base import Number
from .common import analysed_nodes


def run(graph: Graph, sink: DiagnosticSink) -> None:
    for node, facts in analysed_nodes(graph):
        if node.op == INPUT:
            rank = spatial_rank(facts.shape)
            facts.field = (INPUT_AXIS,) * rank if rank > 0 else None
            continue
        op = node.op
        windows = op.windows(facts.attrs)
        sources = node.inputs if op.data_inputs is None else node.inputs[: op.data_inputs]
        fields = [field for source in sources if (field := graph.facts(source).field) is not None]
        if windows is None or len(fields) < len(sources) or any(len(f) != len(windows) for f in fields):
            continue
        if op.broadcasts:
            fields = [broadcast(f, facts.attrs.inputs[i], facts.shape) for i, f in enumerate(fields)]
        base = fields[0] if len(fields) == 1 else merge(fields, node, sink)
        facts.field = tuple(axis.through(w) for axis, w in zip(base, windows, strict=True))


def broadcast(field: Field, shape: Shape, out: Shape) -> Field:
    """The field of an input broadcast to `out`: along an axis where it has one position and the output
    more, every output position reads that one position (stride 0)."""
    return tuple(AxisField(axis.size, 0, axis.padding) if n == 1 and m > 1 else axis
                 for axis, n, m in zip(field, spatial(shape), spatial(out), strict=True))


def merge(fields: list[Field], node: Node, sink: DiagnosticSink) -> Field:
    """Union of the fields of merged paths, per axis; warns once when they are misaligned. A path
    broadcast along an axis (stride 0: a global tensor, such as a squeeze-excitation gate) sees the same
    input at every position; the widest of those is the merged field there, as after global pooling."""
    merged = []
    misaligned = []
    for axis, per_path in enumerate(zip(*fields, strict=True)):
        broadcast_paths = [f for f in per_path if f.stride == 0]
        if broadcast_paths:
            merged.append(max(broadcast_paths, key=lambda f: f.size))
            continue
        strides = {f.stride for f in per_path}
        centres = {f.centre_offset for f in per_path}
        if len(strides) > 1:
            misaligned.append(f"axis {axis + 1}: strides {', '.join(_show(s) for s in sorted(strides))}")
            merged.append(max(per_path, key=lambda f: f.size))
            continue
        if len(centres) > 1:
            misaligned.append(f"axis {axis + 1}: centre offsets {', '.join(_show(c) for c in sorted(centres))} px")
        padding = max(f.padding for f in per_path)
        size = max(f.size - f.padding for f in per_path) + padding
        merged.append(AxisField(exact(size), per_path[0].stride, exact(padding)))
    if misaligned:
        sink.emit(Code.W103, f"paths merged at `{node.name}` see the input differently ({'; '.join(misaligned)}); "
                  "the receptive field reported is their union", node.location,
                  "shift one path (padding, crop offset) so that the merged positions line up", node.trail)
    return tuple(merged)


def _show(x: Number) -> str:
    return str(exact(x))
