"""Multiply-accumulates per node, in each peer's counting convention (see REFERENCE.md):

- torchvision: weight MACs of conv, transposed conv, locally connected and linear layers; nothing else.
- torchinfo: "Mult-Adds": conv layers count (weights + bias) x output positions; other layers with
  parameters count their parameters once per sample.
- darknet: convolutional layers' weight MACs only (Darknet prints 2 x this as BFLOPs).
"""

from __future__ import annotations

from ..diagnostics import DiagnosticSink
from ..graph.model import INPUT, Graph
from ..ops import REGISTRY
from .common import analysed_nodes

CONVENTIONS = ("torchvision", "torchinfo", "darknet")


def run(graph: Graph, sink: DiagnosticSink) -> None:
    for node, meta, inputs in analysed_nodes(graph):
        if node.op == INPUT:
            meta["macs"] = dict.fromkeys(CONVENTIONS, 0)
            continue
        op, p, out = REGISTRY[node.op], node.params, meta["shape"]
        meta["macs"] = {
            "torchvision": op.weight_macs(p, inputs, out),
            "torchinfo": op.torchinfo_macs(p, inputs, out, meta["params"]),
            "darknet": op.darknet_macs(p, inputs, out),
        }
