"""Analysed graph -> Report."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from ..diagnostics import Diagnostic
from ..graph.facts import INPUT_AXIS, Field
from ..graph.model import INPUT, Graph
from ..ops.base import Convention, Number
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
                              training_only=training_only))
        params += facts.params.params
        trainable += facts.trainable
        buffers += facts.params.buffers
        if not training_only:
            macs += layer_macs
            activations += facts.elements * batch
    totals = M.Totals(params=params, trainable_params=trainable, macs=macs,
                      param_bytes=(params + buffers) * BYTES_PER_ELEMENT,
                      activation_bytes=activations * BYTES_PER_ELEMENT)
    return M.Report(
        network=graph.name,
        inputs={name: list(graph.node(node).shape or ()) for name, node in graph.inputs.items()},
        outputs={name: list(facts.shape if (facts := graph.checked(node)) else ())
                 for name, node in graph.outputs.items()},
        training_outputs=sorted(graph.training_outputs),
        layers=layers, totals=totals, diagnostics=[diagnostic_entry(d) for d in diagnostics])


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
                             file=loc.file if loc else "", line=loc.line if loc else 0, col=loc.col if loc else 0)
