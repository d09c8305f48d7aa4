"""Analysed graph -> Report."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from ..analysis.memory import peak_live_elements
from ..diagnostics import Diagnostic
from ..graph.facts import INPUT_AXIS, Field
from ..graph.model import INPUT, REPEAT, Graph, Instance
from ..ops.base import Attrs, Convention, Number, WindowAttrs
from . import model as M

BYTES_PER_ELEMENT = 4  # fp32


def fraction_text(x: Number) -> int | str:
    if isinstance(x, Fraction):
        return x.numerator if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
    return x


def build_report(graph: Graph, diagnostics: list[Diagnostic], convention: Convention | str = Convention.TORCHVISION,
                 batch: int = 1) -> M.Report:
    layers = []
    params = trainable = buffers = macs = activations = 0
    inference = graph.inference_nodes()
    for node in graph.nodes():
        facts = graph.checked(node.name)
        if node.op == INPUT or facts is None:
            continue
        training_only = node.name not in inference
        rf = receptive_field(facts.field)
        layer_macs = facts.macs[convention] * batch
        layers.append(M.Layer(name=node.name, op=facts.label, inputs=list(node.inputs), shape=list(facts.shape),
                              params=facts.params.params, macs=layer_macs, rf=rf, line=node.location.line,
                              training_only=training_only, window=window_of(facts.attrs)))
        params += facts.params.params
        trainable += facts.trainable
        buffers += facts.params.buffers
        if not training_only:
            macs += layer_macs
            activations += facts.elements * batch
    if any(d.is_error for d in diagnostics):  # the layers that checked are listed; their sums are not totals
        totals = M.Totals(params=None, trainable_params=None, macs=None, param_bytes=None, activation_bytes=None,
                          peak_activation_bytes=None, bflops=None)
    else:
        totals = M.Totals(params=params, trainable_params=trainable, macs=macs,
                          param_bytes=(params + buffers) * BYTES_PER_ELEMENT,
                          activation_bytes=activations * BYTES_PER_ELEMENT,
                          peak_activation_bytes=peak_live_elements(graph) * BYTES_PER_ELEMENT * batch,
                          bflops=round(2 * macs / 1e9, 6))
    return M.Report(
        network=graph.name, convention=str(Convention(convention).value), batch=batch,
        inputs={name: list(graph.node(node).shape or ()) for name, node in graph.inputs.items()},
        outputs={name: list(facts.shape if (facts := graph.checked(node)) else ())
                 for name, node in graph.outputs.items()},
        training_outputs=sorted(graph.training_outputs),
        layers=layers, by_op=op_summary(layers), totals=totals, diagnostics=[diagnostic_entry(d) for d in diagnostics])


def collapse_to_depth(graph: Graph, layers: list[M.Layer], depth: int) -> list[M.Layer]:
    """The table at `depth` levels of block instances (torchinfo's `depth=`): each instance `depth` levels
    deep becomes one row in place of its layers (`layer2`, op its block's name, params and MACs summed, the
    shape and receptive field of the tensor it returns). Totals are unchanged: they are the layers'."""
    by_name = {layer.name: layer for layer in layers}
    groups: dict[str, list[M.Layer]] = {}  # a row (a layer's name or an instance's) -> its layers, in order
    units: dict[str, Instance] = {}
    for layer in layers:
        unit = _instance_at(graph, layer.name, depth)
        if unit is not None:
            units[unit.name] = unit
        groups.setdefault(unit.name if unit else layer.name, []).append(layer)
    result = []
    for row, members in groups.items():
        unit = units.get(row)
        if unit is None:
            result.append(members[0])
            continue
        returned = by_name.get(unit.output, members[-1])
        kind = f"{_repeated(graph, unit.name)} x {_copies(graph, unit.name)}" if unit.kind == REPEAT else unit.kind
        result.append(M.Layer(name=unit.name, op=kind, inputs=list(unit.inputs), shape=returned.shape,
                              params=sum(m.params for m in members), macs=sum(m.macs for m in members),
                              rf=returned.rf, line=members[0].line,
                              training_only=all(m.training_only for m in members), layers=len(members)))
    return result


def _instance_at(graph: Graph, layer: str, depth: int) -> Instance | None:
    """The outermost block instance or repeat at least `depth` levels deep that layer `layer` lies in."""
    return next((unit for unit in graph.enclosing(layer) if unit.name.count(".") + 1 >= depth), None)


def _repeated(graph: Graph, repeat: str) -> str:
    """What a repeat repeats: its first copy's block, or op."""
    first = f"{repeat}.0"
    if first in graph.instances:
        return graph.instances[first].kind
    return graph.node(first).op.name if first in graph else "?"


def _copies(graph: Graph, repeat: str) -> int:
    """How many copies a repeat made: its direct children (`layer1.0`, `layer1.1`, ...)."""
    return len({node.split(".")[repeat.count(".") + 1] for node in graph.dag.nodes if node.startswith(repeat + ".")})


def op_summary(layers: list[M.Layer]) -> list[M.OpSummary]:
    """MACs and parameters by op kind (fvcore's breakdown), largest MACs first."""
    kinds: dict[str, list[int]] = {}
    for layer in layers:
        count, params, macs = kinds.setdefault(layer.op, [0, 0, 0])
        kinds[layer.op] = [count + 1, params + layer.params, macs + (0 if layer.training_only else layer.macs)]
    return [M.OpSummary(op=op, layers=count, params=params, macs=macs)
            for op, (count, params, macs) in sorted(kinds.items(), key=lambda item: (-item[1][2], -item[1][1]))]


def window_of(attrs: Attrs) -> M.Window | None:
    """The resolved window of a convolution or pooling layer (`same` padding and per-axis values expanded)."""
    if not isinstance(attrs, WindowAttrs):
        return None
    g = attrs.geometry
    return M.Window(kernel=list(g.kernel), stride=list(g.stride), dilation=list(g.dilation),
                    padding=[list(p) for p in g.padding], groups=attrs.groups)


def receptive_field(field: Field | None) -> M.ReceptiveField | None:
    return None if field is None else M.ReceptiveField(
        size=[a.pixels for a in field], stride=[fraction_text(a.stride) for a in field],
        padding=[fraction_text(a.padding) for a in field])


def tap_entries(graph: Graph, names: Sequence[str]) -> list[M.Tap]:
    """What a feature extractor returning `names` gives (`check --taps`): each tensor's layer, shape,
    channels and receptive field (an input's is one pixel at stride 1). UsageError for an unknown name."""
    taps = []
    for name in names:
        node = graph.tap(name)
        facts = graph.facts(node)
        shape = list(facts.shape)
        field = facts.field
        if field is None and graph.node(node).op == INPUT and len(shape) > 1:
            field = (INPUT_AXIS,) * (len(shape) - 1)
        taps.append(M.Tap(name=name, layer=node, shape=shape, channels=shape[0], rf=receptive_field(field)))
    return taps


def diagnostic_entry(d: Diagnostic) -> M.DiagnosticEntry:
    loc = d.location
    return M.DiagnosticEntry(severity=d.severity.value, code=d.code, message=d.message,
                             file=loc.file if loc else "", line=loc.line if loc else 0, col=loc.col if loc else 0,
                             end_line=(loc.end_line or 0) if loc else 0, end_col=(loc.end_col or 0) if loc else 0,
                             hint=d.hint, notes=list(d.notes), source_line=d.excerpt)
