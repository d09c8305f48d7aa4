"""The Python API the CLI is a thin shell over: ``cnndsl.load(path).report()``."""

from __future__ import annotations

import gc
from pathlib import Path

from .analysis import analyse
from .analysis.macs import CONVENTIONS
from .analysis.memory import peak_live_elements
from .diagnostics import Diagnostic, DiagnosticSink
from .graph.build import build_graph
from .graph.model import Graph
from .report.build import BYTES_PER_ELEMENT, build_report
from .report.model import Report


class Network:
    """A checked network: its expanded graph (analysis results in each node's meta) and the
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


def load(path: str | Path, inputs: dict[str, tuple[int, ...]] | None = None) -> Network:
    """Parse, expand and analyse a spec. Raises SpecError (with every diagnostic) when it has errors,
    UsageError when the file cannot be read or an input override names no input."""
    sink = DiagnosticSink()
    # The builder allocates many small objects that all stay alive until the graph is done; the cyclic
    # garbage collector would rescan them over and over (quadratic on long specs), so pause it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        graph, sink = build_graph(Path(path), inputs, sink)
        analyse(graph, sink)
    finally:
        if collecting:
            gc.enable()
    sink.raise_if_errors()
    return Network(graph, sink.sorted())
