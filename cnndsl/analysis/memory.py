"""Memory: the peak of live activations when running inference in topological order (a tensor is
freed after its last consumer; outputs stay), and what one training step holds: weights, gradients,
optimizer state and the activations autograd keeps for the backward pass. Each node's output elements are
`NodeFacts.elements`."""

from __future__ import annotations

from dataclasses import dataclass

from ..graph.model import INPUT, Graph, Node
from ..ops.base import Kept

BYTES = 4  # fp32
# Optimizer state per trainable parameter: SGD with momentum keeps a buffer, Adam two moments.
OPTIMIZER_STATES = {"sgd": 1, "adam": 2}


def peak_live_elements(graph: Graph) -> int:
    """Largest sum of live tensors during an inference pass in the graph's order."""
    running = graph.inference_nodes()  # training heads do not run
    remaining = {name: sum(reader in running for reader in graph.dag.successors(name)) for name in graph.dag.nodes}
    keep = set(graph.inference_outputs.values())

    def elements(name: str) -> int:
        facts = graph.checked(name)
        return facts.elements if facts else 0

    live = peak = 0
    for node in graph.nodes():
        if node.name not in running:
            continue
        live += elements(node.name)
        peak = max(peak, live)
        for source in node.inputs:
            remaining[source] -= 1
            if remaining[source] == 0 and source not in keep:
                live -= elements(source)
    return peak


def overwrites_input(graph: Graph, node: Node) -> bool:
    """True when `node` may overwrite its first input in place (as torchvision's ReLU(inplace=True) and
    `out += identity` do, saving an allocation and a pass over memory per layer): it can (`Op.computes_in_place`),
    nothing else reads the input, it is not a network input or output, its producer neither returns a view
    nor keeps it for backward (`Op.overwritable_output`), and it was made inside `node`'s own block instance:
    a block called on its own (`model.layer2(x)`) must leave the caller's tensor alone. The PyTorch backend
    compiles it so; the training-memory estimate counts the shared tensor once."""
    if not node.op.computes_in_place:
        return False
    source = node.inputs[0]
    producer = graph.node(source)
    scope = node.name.rpartition(".")[0]
    return (producer.op != INPUT and source.startswith(scope + "." if scope else "")
            and producer.op.overwritable_output
            and graph.shape(source) == graph.shape(node.name)  # a broadcast input is smaller than the result
            and graph.dag.out_degree(source) == 1 and node.inputs.count(source) == 1
            and source not in graph.outputs.values())


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes one training step holds at its peak (the backward's start), fp32, at a batch."""

    optimizer: str
    weights: int  # parameters and buffers
    gradients: int  # one per trainable parameter
    optimizer_state: int
    kept_activations: int  # what autograd keeps for the backward, inputs included

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.kept_activations


def training_memory(graph: Graph, optimizer: str, batch: int) -> TrainingMemory:
    """The estimate of a training step with `optimizer` (`sgd`: with momentum; `adam`). Kept activations:
    each layer keeps its input, its output, all its inputs or nothing (`Op.keeps_for_backward`, measured
    against PyTorch), a tensor a later layer overwrote in place counted once with the one it overwrote (a
    layer working in place that keeps its input keeps a copy of it)."""
    storage: dict[str, str] = {}  # node -> the node whose memory holds its output
    kept: set[str] = set()
    extra = 0.0
    params = buffers = trainable = 0
    for node in graph.nodes():
        if node.op == INPUT:
            storage[node.name] = node.name
            continue
        facts = graph.facts(node.name)
        params, buffers, trainable = params + facts.params.params, buffers + facts.params.buffers, \
            trainable + facts.trainable
        op = node.op
        in_place = overwrites_input(graph, node)
        storage[node.name] = storage[node.inputs[0]] if in_place or op.returns_view else node.name
        what = op.keeps_for_backward(facts.attrs)
        if in_place and op.keeps_output_in_place:
            what = Kept.OUTPUT
        if what == Kept.INPUT and in_place:
            extra += facts.elements  # the input it overwrites is kept as a copy (hardswish_, ReLU6(inplace))
        elif what == Kept.INPUT:
            kept.add(storage[node.inputs[0]])
        elif what == Kept.INPUTS:
            kept.update(storage[source] for source in node.inputs)
        elif what == Kept.OUTPUT:
            kept.add(storage[node.name])
        extra += op.kept_extra * facts.elements
    elements = sum(graph.facts(name).elements for name in kept) + extra
    return TrainingMemory(optimizer, (params + buffers) * BYTES, trainable * BYTES,
                          OPTIMIZER_STATES[optimizer] * trainable * BYTES, round(elements * BYTES * batch))
