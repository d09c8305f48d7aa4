"""The Python API the CLI is a thin shell over: ``cnndsl.load(path).report()``."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .analysis import analyse
from .analysis.macs import CONVENTIONS
from .analysis.memory import peak_live_elements
from .diagnostics import CheckingStopped, Diagnostic, DiagnosticSink
from .graph.elaborate import build_graph
from .graph.model import Graph
from .limits import DEFAULT_LIMITS, Limits
from .report.assemble import BYTES_PER_ELEMENT, build_report
from .report.model import Report

if TYPE_CHECKING:
    import numpy as np
    from torch import fx


class Network:
    """A checked network: its expanded graph (with each node's analysed facts) and the
    warnings and notes found while checking it."""

    def __init__(self, graph: Graph, diagnostics: list[Diagnostic]):
        self.graph = graph
        self.diagnostics = diagnostics

    @property
    def name(self) -> str:
        return self.graph.name

    def report(self, convention: str = "torchvision", batch: int = 1) -> Report:
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown MAC convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
        if batch < 1:
            raise ValueError(f"batch must be positive; got {batch}")
        return build_report(self.graph, self.diagnostics, convention, batch)

    def peak_activation_bytes(self, batch: int = 1) -> int:
        return peak_live_elements(self.graph) * BYTES_PER_ELEMENT * batch

    def to_torch(self, seed: int | None = 0, weights: str | Path | None = None) -> fx.GraphModule:
        """A torch.nn.Module (an fx.GraphModule, in eval mode) whose submodules carry the spec's names.

        Parameters get PyTorch's default initialisation drawn from `seed` (None: the global random
        state), or are loaded from a state_dict file `weights`. Raises SpecError (E600, E601) when a
        layer cannot be lowered or the weights do not fit.
        """
        from .backends.torch import build_module, load_weights

        module = build_module(self.graph, seed)
        if weights is not None:
            load_weights(module, self.graph, Path(weights))
        return module

    def weights(self, seed: int | None = 0, weights: str | Path | None = None) -> dict[str, np.ndarray]:
        """The parameters and buffers as numpy arrays, named as `to_torch()`'s state_dict: PyTorch's
        default initialisation drawn from `seed`, or the state_dict file `weights`. What the TVM backend
        compiles with (the same numbers as the PyTorch module, by construction)."""
        module = self.to_torch(seed=seed, weights=weights)
        return {key: tensor.detach().cpu().numpy() for key, tensor in module.state_dict().items()}


def load(path: str | Path, inputs: dict[str, tuple[int, ...]] | None = None, limits: Limits = DEFAULT_LIMITS,
         import_path: Sequence[str | Path] = ()) -> Network:
    """Parse, expand and analyse a spec. Raises SpecError (with every diagnostic) when it has errors,
    UsageError when the file cannot be read or an input override names no input.

    Imports resolve inside the spec's directory tree and the `import_path` directories only; `limits`
    bounds the work a spec may ask for (see cnndsl.limits)."""
    sink = DiagnosticSink(max_errors=limits.errors, max_per_line=limits.per_line, max_per_code=limits.per_code)
    # The builder allocates many small objects that all stay alive until the graph is done; the cyclic
    # garbage collector would rescan them over and over (quadratic on long specs), so pause it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        graph, sink = build_graph(Path(path), inputs, sink, limits, [Path(p) for p in import_path])
        if sink.stopped is None:
            analyse(graph, sink)
    except CheckingStopped:
        pass  # the sink holds the diagnostics up to the limit, the last one saying why it stopped
    finally:
        if collecting:
            gc.enable()
    sink.raise_if_errors()
    return Network(graph, sink.sorted())
