"""The graph IR: one node per primitive op (blocks are expanded), in a networkx DiGraph.

Nodes are immutable pydantic models that remember where they came from (source location and the
block calls that produced them). Analysis passes record what they find about each node in its typed
`NodeFacts` (graph/facts.py), or why it could not be checked (`Unchecked`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator, Sequence

import networkx as nx
from pydantic import BaseModel, ConfigDict

from ..diagnostics import Code, Diagnostic, Location, SourceText, UsageError, did_you_mean
from ..ops import INPUT, Op, OpParams
from .facts import NodeFacts, Unchecked

__all__ = ["INPUT", "REPEAT", "UNNAMED", "Graph", "Instance", "Node"]


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str  # unique, qualified by block path: "layer1.0.conv1"
    op: Op  # the registered op as called (`op.name`: "conv", "conv2d", ...), or INPUT
    params: OpParams | None  # None for inputs
    inputs: tuple[str, ...]  # producer node names, in argument order
    location: Location
    trail: tuple[str, ...] = ()  # "in block `basic` called at file:line:col", outermost first
    shape: tuple[int, ...] | None = None  # declared shape, inputs only


class Instance(BaseModel):
    """A block instance or a repeat as the spec called it: the tensors it was given (in the block's
    declared input order) and the one it returns. A backend makes it a callable unit (an nn.Module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # qualified: its layers' names start with it and a dot
    kind: str  # the block's name, or REPEAT
    inputs: tuple[str, ...]
    input_names: tuple[str, ...]  # what the block calls them (`in`, or its `input a, b`); ("in",) for a repeat
    output: str


UNNAMED = "_"  # `as _`: a block instance whose layers are named in the caller's scope
REPEAT = "repeat"  # the kind of a `layer x N` instance: its copies are numbered from 0


class Graph:
    """A network: nodes in creation order (which is a topological order), named inputs and outputs."""

    def __init__(self, name: str):
        self.name = name
        self.dag: nx.DiGraph = nx.DiGraph()
        self.inputs: dict[str, str] = {}  # input name -> node
        self.outputs: dict[str, str] = {}  # output name -> node
        self.training_outputs: set[str] = set()  # outputs computed in training mode only (auxiliary heads)
        self.pruned = False  # inference runs only what the outputs need (a graph `with_outputs`)
        self.instances: dict[str, Instance] = {}  # block instances and repeats, by qualified name
        self.tensor_names: dict[str, tuple[str, Location]] = {}  # node -> (assigned tensor name, where)
        # What the spec's expressions read of tensor shapes while it was expanded ((node, axis or None for
        # the whole shape) -> the value read): the graph's structure depends on these values only.
        self.shape_reads: dict[tuple[str, int | None], int | tuple[int, ...]] = {}
        # Plain dicts beside the DiGraph (which holds the same objects): passes read every node several
        # times, and networkx's views cost more than the analysis itself.
        self._nodes: dict[str, Node] = {}
        self._facts: dict[str, NodeFacts | Unchecked] = {}  # by node; absent until the shape pass ran
        self.sources: dict[str, SourceText] = {}  # the files the nodes come from, by the path locations show

    def content_hash(self) -> str:
        """sha256 of the expanded network (names, ops, parameters, wiring, shapes): what an artifact is
        compiled from, independent of comments and formatting in the spec."""
        digest = hashlib.sha256()
        for node in self.nodes():
            params = node.params.model_dump(mode="json") if node.params is not None else None
            digest.update(json.dumps([node.name, node.op.name, params, node.inputs, self.shape(node.name)],
                                     sort_keys=True, default=str).encode())
        return digest.hexdigest()

    def add(self, node: Node) -> None:
        self._nodes[node.name] = node
        self.dag.add_node(node.name, node=node)
        for source in node.inputs:
            self.dag.add_edge(source, node.name)

    def __contains__(self, name: str) -> bool:
        return name in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def node(self, name: str) -> Node:
        return self._nodes[name]

    def diagnostic(self, code: Code, message: str, location: Location | None, hint: str | None = None,
                   notes: tuple[str, ...] = ()) -> Diagnostic:
        """A diagnostic about this graph found after checking (a backend's E600, E601), quoting its line."""
        return Diagnostic(code, message, location, hint, notes).quoting(self.sources)

    @property
    def inference_outputs(self) -> dict[str, str]:
        """The outputs an inference pass computes (all but `training output`s), in declaration order."""
        return {name: node for name, node in self.outputs.items() if name not in self.training_outputs}

    def inference_nodes(self) -> set[str]:
        """The nodes an inference pass runs: those an inference output depends on. The rest feed training
        outputs only: their parameters count, their MACs and activations do not run at inference."""
        if not self.training_outputs and not self.pruned:
            return set(self._nodes)
        needed: set[str] = set()
        stack = list(self.inference_outputs.values())
        while stack:
            name = stack.pop()
            if name not in needed:
                needed.add(name)
                stack.extend(self._nodes[name].inputs)
        needed.update(self.inputs.values())  # an input read by training heads only is still an input
        return needed

    def enclosing(self, name: str) -> list[Instance]:
        """The block instances and repeats that layer (or instance) `name` lies in, outermost first: those
        whose names are its dotted prefixes (`layer1`, `layer1.0` for `layer1.0.conv1`)."""
        parts = name.split(".")
        return [unit for depth in range(1, len(parts)) if (unit := self.instances.get(".".join(parts[:depth])))]

    def tap(self, name: str) -> str:
        """The node whose tensor `name` means: a layer, a block instance or repeat (the tensor it returns), an
        input or an output. UsageError, with the nearest name, when it names none of them."""
        if name in self._nodes:
            return name
        if name in self.instances:
            return self.instances[name].output
        if name in self.outputs:
            return self.outputs[name]
        hint = did_you_mean(name, [*self._nodes, *self.instances, *self.outputs])
        raise UsageError(f"`{name}` names no layer, block instance, input or output of {self.name}"
                         + (f"; {hint}" if hint else ""))

    def with_outputs(self, taps: Sequence[str]) -> Graph:
        """The same network (nodes, facts and instances shared) computing the tensors `taps` name instead of
        its outputs, in that order and under those names, all at inference: feature extraction, as
        torchvision's create_feature_extractor. The backends compile only what the taps need."""
        if not taps:
            raise UsageError("name at least one layer or block instance to return")
        repeated = sorted({name for name in taps if list(taps).count(name) > 1})
        if repeated:
            raise UsageError(f"{', '.join(f'`{name}`' for name in repeated)} named twice")
        tapped = copy.copy(self)
        tapped.outputs = {name: self.tap(name) for name in taps}
        tapped.training_outputs = set()
        tapped.pruned = True
        return tapped

    def record(self, name: str, facts: NodeFacts | Unchecked) -> None:
        """What the shape pass found about node `name`: its facts, or why it has none."""
        self._facts[name] = facts

    def recorded(self, name: str) -> bool:
        """Whether node `name` was resolved (checked or not)."""
        return name in self._facts

    def checked(self, name: str) -> NodeFacts | None:
        """The facts of node `name`, or None when it could not be checked (or was not analysed)."""
        facts = self._facts.get(name)
        return facts if isinstance(facts, NodeFacts) else None

    def facts(self, name: str) -> NodeFacts:
        """The facts of a node of a checked network (a network with errors never reaches the backends)."""
        facts = self._facts.get(name)
        if not isinstance(facts, NodeFacts):
            raise LookupError(f"node `{name}` was not checked ({facts.value if facts else 'not analysed'})")
        return facts

    def shape(self, name: str) -> tuple[int, ...]:
        """The per-sample output shape of node `name` of a checked network."""
        return self.facts(name).shape

    def nodes(self) -> Iterator[Node]:
        """Nodes in creation order, a topological order (checked by graph.invariants)."""
        return iter(self._nodes.values())
