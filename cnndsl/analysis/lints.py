"""Lints: warnings and notes about specs that are valid but probably not what was meant."""

from __future__ import annotations

from ..diagnostics import Code, DiagnosticSink
from ..graph.model import INPUT, Graph
from ..layout import channels, fmt_shape, spatial
from ..ops import WindowAttrs
from ..ops.formulas import unread_tail
from .common import analysed_nodes


def run(graph: Graph, sink: DiagnosticSink) -> None:
    stride_tails(graph, sink)
    oversized_padding(graph, sink)
    unused_tensors(graph, sink)
    whole_input_coverage(graph, sink)
    channel_alignment(graph, sink)
    uneven_windows(graph, sink)


def stride_tails(graph: Graph, sink: DiagnosticSink) -> None:
    """W100: the last input positions are never read because the stride does not fit (the notes'
    7x7 input, 3x3 kernel, stride 3 case). Kernels smaller than their stride skip positions everywhere
    by design and are not reported. Every op with a sliding window (`WindowAttrs`) is checked."""
    for node, facts in analysed_nodes(graph):
        a = facts.attrs
        for axis, tail in unread_tails(a):
            assert isinstance(a, WindowAttrs)
            g, n, pads = a.geometry, spatial(a.x)[axis], a.geometry.padding[axis]
            sink.emit(Code.W100, f"`{node.name}`: stride {g.stride[axis]} does not fit axis {axis + 1} (input {n}, "
                      f"kernel {g.effective[axis]}, padding {pads[0]}+{pads[1]}): the last {tail} input "
                      f"position(s) are never read; output {g.out[axis]}",
                      node.location, "pad the input or pick sizes where (input + padding - kernel) is a "
                      "multiple of the stride", node.trail)


def unread_tails(attrs: object) -> list[tuple[int, int]]:
    """(axis, positions) for each axis where a sliding window's stride leaves the last input positions
    unread. Kernels smaller than their stride skip positions everywhere by design and are not counted."""
    if not isinstance(attrs, WindowAttrs):
        return []
    g = attrs.geometry
    tails = []
    for axis, n in enumerate(spatial(attrs.x)):
        if g.effective[axis] >= g.stride[axis]:
            tail = unread_tail(n, g.kernel[axis], g.stride[axis], *g.padding[axis], g.dilation[axis], g.ceil)
            if tail:
                tails.append((axis, tail))
    return tails


def oversized_padding(graph: Graph, sink: DiagnosticSink) -> None:
    """W102: padding beyond half the (dilated) kernel adds output positions that see only padding. (Pooling
    padding is at most half the kernel, E306, so in practice this concerns convolutions.)"""
    for node, facts in analysed_nodes(graph):
        if not isinstance(facts.attrs, WindowAttrs):
            continue
        g = facts.attrs.geometry
        for axis, (before, after) in enumerate(g.padding):
            half = g.effective[axis] // 2
            if max(before, after) > half:
                sink.emit(Code.W102, f"`{node.name}`: padding {max(before, after)} exceeds half the kernel "
                          f"({g.effective[axis]} // 2 = {half}) along axis {axis + 1}; border outputs see only "
                          "padding", node.location, f"use padding={half} (or `same`)", node.trail)
                break


def unused_tensors(graph: Graph, sink: DiagnosticSink) -> None:
    """W101: a tensor (or a whole chain) whose value reaches no output."""
    outputs = set(graph.outputs.values())
    for node in graph.nodes():
        if graph.dag.out_degree(node.name) or node.name in outputs:
            continue
        if node.op == INPUT:
            sink.emit(Code.W101, f"input `{node.name}` is never used", node.location,
                      "remove it, or feed it to a layer that reaches an output", node.trail)
            continue
        name, where = graph.tensor_names.get(node.name, ("", node.location))
        what = f"tensor `{name}`" if name else f"the result of `{node.name}`"
        sink.emit(Code.W101, f"{what} is never used: it reaches no output", where,
                  "declare it with `output` or remove it", node.trail)


def whole_input_coverage(graph: Graph, sink: DiagnosticSink) -> None:
    """I100: the first layer whose receptive field covers the whole (first spatial) input."""
    images = [facts.shape for name in graph.inputs.values()
              if (facts := graph.checked(name)) is not None and len(facts.shape) > 1]
    if not images:
        return
    size = spatial(images[0])
    for node, facts in analysed_nodes(graph):
        field = facts.field
        if node.op == INPUT or field is None or len(field) != len(size):
            continue
        if all(axis.pixels >= n for axis, n in zip(field, size, strict=True)):
            shown = fmt_shape([axis.pixels for axis in field])
            sink.emit(Code.I100, f"`{node.name}` is the first layer whose receptive field ({shown}) covers the whole "
                      f"{fmt_shape(size)} input", node.location, None, node.trail)
            return


def channel_alignment(graph: Graph, sink: DiagnosticSink) -> None:
    """I101: convolution channel counts that are not multiples of 8 leave tensor cores idle. The
    network's own input channels (3 for RGB) are not reported. Ops that declare `tensor_core_channels`."""
    for node, facts in analysed_nodes(graph):
        if node.op == INPUT or not node.op.tensor_core_channels:
            continue
        counts = [("output", channels(facts.shape))]
        if graph.node(node.inputs[0]).op != INPUT:
            counts.append(("input", channels(facts.attrs.x)))
        odd = [f"{what} {c}" for what, c in counts if c % 8]
        if odd:
            sink.emit(Code.I101, f"`{node.name}`: {' and '.join(odd)} channels are not a multiple of 8", node.location,
                      "multiples of 8 let GPU tensor cores run at full rate", node.trail)


def uneven_windows(graph: Graph, sink: DiagnosticSink) -> None:
    """I102: windows of different sizes (adaptive pooling): the field reported is the widest."""
    for node, facts in analysed_nodes(graph):
        if node.op == INPUT:
            continue
        windows = node.op.windows(facts.attrs) or []
        if any(w.uneven for w in windows):
            sink.emit(Code.I102,
                      f"`{node.name}`: {fmt_shape(facts.attrs.x)} -> {fmt_shape(facts.shape)} pools windows of "
                      "different sizes; the receptive field reported is the widest window's", node.location,
                      None, node.trail)
