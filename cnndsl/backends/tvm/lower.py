"""Build a Relax IRModule from a checked network, directly from the graph (not through torch.export).

`main(inputs..., params...)` takes the network's inputs at a fixed batch (or a symbolic one), then the parameters in the
order `Lowered.param_names` lists them; it returns one tensor, or a tuple for several outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tvm
import tvm.tirx
from tvm import relax

from ...diagnostics import Code, SpecError
from ...graph.model import INPUT, Graph
from ...layout import batched, spatial
from ...ops.pool import AdaptiveMaxPool
from .. import unsupported_ops
from .lowerings import DTYPE, LOWERINGS, Emitter, lower_layer


@dataclass
class Lowered:
    module: tvm.IRModule
    param_names: list[str]
    param_values: list[np.ndarray]
    input_shapes: dict[str, tuple[Any, ...]]  # batched: the batch an int, or a variable (dynamic)
    output_shapes: dict[str, tuple[Any, ...]]


# Relax has no adaptive max pooling: it is lowered one output cell at a time (`lowerings.adaptive_maxpool`),
# so its output size along an axis bounds the number of ops it emits.
MAX_ADAPTIVE_MAX_CELLS = 1024


def check_supported(graph: Graph) -> None:
    missing = unsupported_ops(graph, LOWERINGS.lowers, "TVM")
    for node in graph.nodes():
        if not isinstance(node.op, AdaptiveMaxPool):
            continue
        a = graph.facts(node.name).attrs
        cells = [m for n, m in zip(spatial(a.x), spatial(a.out), strict=True) if n != m]
        if cells and max(cells) > MAX_ADAPTIVE_MAX_CELLS:
            missing.append(graph.diagnostic(Code.E600,
                                            f"`{node.name}` pools to {max(cells):,} positions along an axis; "
                                            f"the TVM backend lowers adaptive max pooling window by window, at most "
                                            f"{MAX_ADAPTIVE_MAX_CELLS:,}", node.location,
                                            "pool to fewer positions, or use adaptive_avgpool", node.trail))
    if missing:
        raise SpecError(missing)


def build_relax(graph: Graph, state: Mapping[str, np.ndarray], batch: int | tvm.tirx.Var = 1) -> Lowered:
    """Lower every layer (after checking they all can be) with `state` (the PyTorch backend's state_dict
    as numpy arrays) as the weights."""
    check_supported(graph)
    builder = relax.BlockBuilder()
    emitter = Emitter(builder, state, batch)
    input_shapes = {name: batched(graph.shape(node), batch) for name, node in graph.inputs.items()}
    inputs = {name: relax.Var(name, relax.TensorType(shape, DTYPE)) for name, shape in input_shapes.items()}
    with builder.function("main"):
        with builder.dataflow():
            values: dict[str, relax.Expr] = {}
            running = graph.inference_nodes()  # training heads are not compiled
            for node in graph.nodes():
                if node.op == INPUT:
                    values[node.name] = inputs[_input_name(graph, node.name)]
                    continue
                if node.name not in running:
                    continue
                values[node.name] = lower_layer(emitter, node.name, node.op, graph.facts(node.name).attrs,
                                                [values[s] for s in node.inputs])
            results = [values[node] for node in graph.inference_outputs.values()]
            output = builder.emit_output(results[0] if len(results) == 1 else relax.Tuple(results))
        builder.emit_func_output(output, params=[*inputs.values(), *emitter.params])
    module = builder.get()
    module["main"] = module["main"].with_attr("num_input", len(inputs))
    return Lowered(
        module=module,
        param_names=emitter.names,
        param_values=emitter.values,
        input_shapes=input_shapes,
        output_shapes={name: batched(graph.shape(node), batch) for name, node in graph.inference_outputs.items()},
    )


def _input_name(graph: Graph, node: str) -> str:
    return next(name for name, n in graph.inputs.items() if n == node)


