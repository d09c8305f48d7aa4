"""Deployable artifacts of a compiled module: a torch.export program (.pt2) and ONNX.

Both are exported in inference mode (batch norm uses its running statistics, dropout is off). With
`dynamic_batch` the batch axis is symbolic; otherwise the artifact is specialised to `batch`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.export import Dim

from ...graph.model import Graph

if TYPE_CHECKING:
    import onnx

ONNX_OPSET = 18
_EXAMPLE_BATCH_DYNAMIC = 2  # torch.export specialises a batch of 1, so trace a dynamic batch with 2


def example_inputs(graph: Graph, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of the declared shapes, in declaration order (the forward's argument order)."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, *graph.node(node).shape or (), generator=generator)
                 for node in graph.inputs.values())


def _dynamic_shapes(graph: Graph) -> dict[str, dict[int, Dim]]:
    batch = Dim("batch", min=1, max=65536)
    return {name: {0: batch} for name in _argument_names(graph)}


def _argument_names(graph: Graph) -> list[str]:
    from .lower import input_argument

    return [input_argument(node) for node in graph.inputs.values()]


def export_program(module: nn.Module, graph: Graph, batch: int = 1,
                   dynamic_batch: bool = False) -> torch.export.ExportedProgram:
    module = module.eval()
    inputs = example_inputs(graph, _EXAMPLE_BATCH_DYNAMIC if dynamic_batch else batch)
    shapes = _dynamic_shapes(graph) if dynamic_batch else None
    with _quiet():
        return torch.export.export(module, inputs, dynamic_shapes=shapes, strict=False)


@contextmanager
def _quiet() -> Iterator[None]:
    """torch.export and the ONNX exporter warn about their own internals (deprecations, torchvision ops
    they skip); none of it concerns the user's network."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def save_program(module: nn.Module, graph: Graph, path: Path, batch: int = 1, dynamic_batch: bool = False) -> None:
    torch.export.save(export_program(module, graph, batch, dynamic_batch), str(path))


def save_onnx(module: nn.Module, graph: Graph, path: Path, batch: int = 1, dynamic_batch: bool = False,
              fold_bn: bool = False) -> None:
    """ONNX through torch.export (the dynamo exporter), simplified by onnxscript's optimizer (constant
    folding, its rewrite rules; batch norm folded into the convolution before it only with `fold_bn`),
    each node named after the spec's layer, then checked with onnx.checker."""
    import onnx
    from onnxscript import optimizer, rewriter

    program = export_program(module, graph, batch, dynamic_batch)
    with _quiet():
        onnx_program = torch.onnx.export(program, input_names=_argument_names(graph),
                                         output_names=list(graph.inference_outputs), opset_version=ONNX_OPSET,
                                         dynamo=True, verbose=False, optimize=False)
        assert onnx_program is not None
        rules = [rule for rule in getattr(rewriter, "_DEFAULT_REWRITE_RULES", ())  # the exporter's own set
                 if fold_bn or "BatchNorm" not in (getattr(rule, "name", None) or "")]
        optimizer.fold_constants(onnx_program.model)
        rewriter.rewrite(onnx_program.model, pattern_rewrite_rules=rules)
        optimizer.remove_unused_nodes(onnx_program.model)
    model = onnx_program.model_proto
    name_nodes_after_layers(model, graph)
    if dynamic_batch:
        _name_batch_axis(model)
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)


def name_nodes_after_layers(model: onnx.ModelProto, graph: Graph) -> None:
    """Name each node after the spec layer it computes (`layer2.0.conv1`; a layer's further nodes
    `layer2.0.add1/Add`; a convolution with its batch norm folded in `conv1+bn1`), read from the module
    path the exporter records in its `namespace` metadata, so that Netron and onnxruntime's profiles show
    the spec's names instead of `node_Conv_306`."""
    taken: set[str] = set()
    for node in model.graph.node:
        metadata = {prop.key: prop.value for prop in node.metadata_props}
        modules = [part.split(": ", 1)[0] for part in metadata.get("namespace", "").split("/")
                   if ": " in part and not part.split(": ", 1)[1].startswith("aten.")]
        layer = modules[-1] if modules and modules[-1] else None
        if layer is None:
            continue  # a node the optimizer made: it keeps the exporter's name
        if "FuseBatchNormInto" in metadata.get("pkg.onnxscript.rewriter.rule_name", "") and layer in graph:
            layer = f"{graph.node(layer).inputs[0]}+{layer}"  # the fused node keeps the batch norm's metadata
        name = layer if layer not in taken else f"{layer}/{node.op_type}"
        suffix = 1
        while name in taken:
            suffix += 1
            name = f"{layer}/{node.op_type}_{suffix}"
        taken.add(name)
        node.name = name


def _name_batch_axis(model: onnx.ModelProto) -> None:
    """The exporter names the symbolic batch after an internal symbol (`s40`); call it `batch`."""
    graph = model.graph
    for value in [*graph.input, *graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        if dim.dim_param:
            dim.dim_param = "batch"
