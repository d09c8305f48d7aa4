"""Expanding a chain's layers (the other half of elaborate.py): an op becomes a node, a block runs its
body on the tensors it is given, `x N` makes copies, each named as the language says; every step counted
against the limits."""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..diagnostics import Code, DiagnosticSink, Location, did_you_mean
from ..limits import Limits
from ..ops import REGISTRY, Op
from ..syntax import ast as A
from .binding import Binder
from .expr import TensorShape, Value, fmt_value
from .model import REPEAT, UNNAMED, Graph, Instance, Node
from .naming import Names, aliases
from .scope import POISON, BlockInfo, Constants, Frame, loc


class Returned(Exception):
    """A block body's `return`: unwinds to the call with the returned tensor."""

    def __init__(self, tensor: str):
        self.tensor = tensor


class LayerExpansion:
    """Chains, layers and blocks, for the Elaborator (elaborate.py), which holds the state below and runs
    statements."""

    sink: DiagnosticSink
    limits: Limits
    graph: Graph
    constants: Constants
    binder: Binder
    names: Names
    layers: int
    steps: int
    depth: int

    def shapes(self, frame: Frame) -> TensorShape:
        raise NotImplementedError

    def shapes_of(self, tensors: Mapping[str, str]) -> TensorShape:
        raise NotImplementedError

    def add_node(self, node: Node) -> None:
        raise NotImplementedError

    def lookup_tensor(self, ident: A.Ident, frame: Frame) -> str:
        raise NotImplementedError

    def run_body(self, statements: Sequence[A.Node], frame: Frame, module_level: bool = False) -> None:
        raise NotImplementedError

    # ---- chains ---------------------------------------------------------------------------------
    def run_chain(self, chain: A.Chain, frame: Frame) -> str:
        current = [self.lookup_tensor(ident, frame) for ident in chain.source.names]
        if POISON in current:
            return POISON
        for layer in chain.layers:
            current = self.apply_layer(layer, current, frame)
            if POISON in current:
                return POISON
        if len(current) != 1:
            self.sink.emit(Code.E207, f"a list of {len(current)} tensors must feed a layer that merges them",
                           loc(frame.env, chain.source), hint="`[a, b] -> add` or `[a, b] -> concat`",
                           notes=frame.trail)
            return POISON
        return current[0]

    def apply_layer(self, layer: A.Layer, current: list[str], frame: Frame) -> list[str]:
        env = frame.env
        if layer.guard is not None:
            keep = self.constants.evaluate(layer.guard, frame.values, env, frame.trail, self.shapes(frame))
            if keep is None:
                return [POISON]
            if not isinstance(keep, bool):
                self.sink.emit(Code.E208, f"the condition after `if` must be `true` or `false`; got {fmt_value(keep)}",
                               loc(env, layer.guard), notes=frame.trail)
                return [POISON]
            if not keep:
                return current
        callee = layer.call.callee.name
        block = env.blocks.get(callee)
        op = REGISTRY.get(callee)
        where = loc(env, layer.call)
        if block is None and op is None:
            if env.incomplete:
                return [POISON]  # perhaps a block of the import that failed, which is reported
            hint = did_you_mean(callee, [*REGISTRY, *env.blocks])
            if callee in frame.tensors:
                hint = f"`{callee}` is a tensor; merge tensors with `[a, {callee}] -> add`"
            self.sink.emit(Code.E200, f"unknown layer `{callee}`: not an op or a block in scope",
                           loc(env, layer.call.callee), hint=hint, notes=frame.trail)
            return [POISON]
        if not self.naming_ok(layer, callee, block is not None, frame):
            return [POISON]
        unnamed = layer.alias is not None and layer.alias.name == UNNAMED
        # In a `numbered block` an unnamed layer, block instance or repeated copy takes the next number.
        numbered = frame.numbering is not None and layer.alias is None
        index = layer.repeat_index
        templated = layer.alias_index is not None  # `x n for i as layer{i + 1}`
        args: list[tuple[A.Arg, Value]] | None = []
        if index is None:  # evaluated once; with an index, once per copy (below)
            args = self.binder.evaluate_args(layer.call, frame, self.shapes(frame))
            if args is None:
                return [POISON]
        copies = 1
        if layer.repeat is not None:
            count = self.constants.evaluate(layer.repeat, frame.values, env, frame.trail, self.shapes(frame))
            if count is None:
                return [POISON]
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                self.sink.emit(Code.E205, f"a repeat count is a non-negative integer; got {fmt_value(count)}",
                               loc(env, layer.repeat), notes=frame.trail)
                return [POISON]
            if len(current) != 1:
                self.sink.emit(Code.E207,
                               f"`{callee} x {count}` repeats a layer fed by {len(current)} tensors; each copy "
                               "feeds the next, so a repeated layer takes one input", where, notes=frame.trail)
                return [POISON]
            if count > self.limits.layers:
                self.too_large(f"`{callee} x {count:,}` repeats past the limit of {self.limits.layers:,} layers",
                               loc(env, layer.repeat), frame)
            copies = count
        base = "" if unnamed or numbered or templated else \
            layer.alias.name if layer.alias else self.names.auto_name(op.kind if op else callee, frame)
        first = base if layer.repeat is None else f"{base}.0"  # a repeat names its copies base.0, base.1, ...
        if base and layer.alias and self.names.taken(frame.prefix + first, loc(env, layer.alias), frame):
            return [POISON]
        given = current
        for copy in range(copies):
            name = None if unnamed or templated else \
                self.copy_name(base, copy if layer.repeat is not None else None, frame)
            self.step(where, frame)
            if index is not None:
                indexed = replace(frame, values=frame.values.new_child({index.name: copy}))
                args = self.binder.evaluate_args(layer.call, indexed, self.shapes(frame))
                if templated:
                    name = self.templated_name(layer, indexed)
            if args is None or (templated and name is None):
                return [POISON]
            if block is not None:
                current = self.expand_block(block, args, None if unnamed else name, current, frame, where)
            else:
                assert op is not None and name is not None
                current = self.add_op(op, callee, args, name, current, frame, where)
            if POISON in current:
                return current
        if layer.repeat is not None and copies and base:  # unnamed or numbered copies have no container
            self.graph.instances[frame.prefix + base] = Instance(name=frame.prefix + base, kind=REPEAT,
                                                                 inputs=tuple(given), input_names=("in",),
                                                                 output=current[0])
        return current

    def naming_ok(self, layer: A.Layer, callee: str, is_block: bool, frame: Frame) -> bool:
        """Whether the layer's naming is one the language has, each mistake reported where it is written:
        `as _` on an op (E209), a repeat index hiding a name (E202), a `name{...}` without an index (E209)."""
        env = frame.env
        if layer.alias is not None and layer.alias.name == UNNAMED and not is_block:
            self.sink.emit(Code.E209, f"`as {UNNAMED}` gives a block instance no name of its own; `{callee}` (an op) "
                           "needs one", loc(env, layer.alias), hint="name it (`as name`) or leave the name out",
                           notes=frame.trail)
            return False
        index = layer.repeat_index
        if index is not None and index.name in frame.values:
            self.sink.emit(Code.E202, f"the repeat index `{index.name}` hides the constant or parameter `{index.name}`",
                           loc(env, index), hint="give the index another name", notes=frame.trail)
            return False
        if layer.alias_index is not None and (index is None or layer.alias is None):
            self.sink.emit(Code.E209, "a name with `{...}` names the copies of a repeat by its index", loc(env, layer),
                           hint="write `x n for i as name{i + 1}`", notes=frame.trail)
            return False
        return True

    def templated_name(self, layer: A.Layer, frame: Frame) -> str | None:
        """`name{expr}` for one copy of a repeat (`frame` binds its index): the name followed by the value,
        a non-negative integer (`denselayer{i + 1}` names torchvision's `denselayer1`, `denselayer2`, ...)."""
        assert layer.alias is not None and layer.alias_index is not None
        value = self.constants.evaluate(layer.alias_index, frame.values, frame.env, frame.trail, self.shapes(frame))
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.sink.emit(Code.E205, f"the number in a name is a non-negative integer; got {fmt_value(value)}",
                           loc(frame.env, layer.alias_index), notes=frame.trail)
            return None
        return f"{layer.alias.name}{value}"

    @staticmethod
    def copy_name(base: str, copy: int | None, frame: Frame) -> str | None:
        """The name of a layer or block instance (`copy`: its index in a repeat): `base`, `base.<copy>`, the
        next number of a numbered body (no `base`)."""
        if base:
            return base if copy is None else f"{base}.{copy}"
        assert frame.numbering is not None
        number = frame.numbering[0]
        frame.numbering[0] += 1
        return str(number)

    def step(self, where: Location, frame: Frame) -> None:
        """Count one layer or block instance; a block that adds no layer still costs a step, so that
        `id x 1000000000` stops as early as `relu x 1000000000`."""
        self.steps += 1
        if self.steps > 2 * self.limits.layers:
            self.too_large(f"the network takes more than {2 * self.limits.layers:,} expansion steps (layers and "
                           "block instances)", where, frame)

    def too_large(self, message: str, where: Location, frame: Frame) -> None:
        self.sink.emit(Code.E210, message, where, notes=frame.trail,
                       hint="check repeat counts (`x N`) and nested blocks; a network this large is checked with "
                            "a higher layer limit (`--max-layers N`; `Limits(layers=N)` in Python)")
        self.sink.stop("checking stopped at a limit; the layers before it are not reported")

    def add_op(self, op: Op, callee: str, args: list[tuple[A.Arg, Value]], name: str, current: list[str],
               frame: Frame, where: Location) -> list[str]:
        if not self.binder.arity_ok(callee, op.min_inputs, op.max_inputs, len(current), where, frame):
            return [POISON]
        params = self.binder.bind_op(op, callee, args, frame, where)
        if params is None:
            return [POISON]
        self.layers += 1
        if self.layers > self.limits.layers:
            self.too_large(f"the network expands to more than {self.limits.layers:,} layers", where, frame)
        qualified = frame.prefix + name
        if self.names.taken(qualified, where, frame):  # e.g. a repeat's copies meeting another repeat's, `as` both
            return [POISON]
        self.add_node(Node(name=qualified, op=op, params=params, inputs=tuple(current), location=where,
                            trail=frame.trail))
        return [qualified]

    # ---- blocks ---------------------------------------------------------------------------------
    def expand_block(self, info: BlockInfo, args: list[tuple[A.Arg, Value]], name: str | None, current: list[str],
                     frame: Frame, where: Location) -> list[str]:
        """Run a block's body on `current`. Its layers are named `name.<layer>`; with no name (`as _`) they
        are named in the caller's scope, as if written at the call."""
        block = info.definition
        callee = block.name.name
        if callee in frame.block_stack:
            chain = " -> ".join((*frame.block_stack[frame.block_stack.index(callee):], callee))
            self.sink.emit(Code.E502, f"block `{callee}` calls itself: {chain}", where,
                           hint="blocks cannot recurse; repeat a block with `x N` instead", notes=frame.trail)
            return [POISON]
        if self.depth >= self.limits.expansion_depth:
            self.too_large(f"blocks and `if` bodies nest more than {self.limits.expansion_depth} deep here", where,
                           frame)
        input_names = [ident.name for stmt in block.body if isinstance(stmt, A.BlockInputs) for ident in stmt.names]
        input_names = input_names or ["in"]
        if not self.binder.arity_ok(callee, len(input_names), len(input_names), len(current), where, frame):
            return [POISON]
        params = [p.name.name for p in block.params]
        required = {p.name.name for p in block.params if p.default is None}
        bound = self.binder.bind(callee, params, params, required, args, frame, where)
        if bound is None:
            return [POISON]
        values: dict[str, Value] = {}
        for param in block.params:
            if param.name.name in bound:
                values[param.name.name] = bound[param.name.name][1]
            else:
                assert param.default is not None
                scope = ChainMap(values, info.env.consts)
                inputs = self.shapes_of(dict(zip(input_names, current, strict=True)))  # `c=channels(in)`
                default = self.constants.evaluate(param.default, scope, info.env, frame.trail, inputs)
                if default is None:
                    return [POISON]
                values[param.name.name] = default
        numbering = [0] if block.numbered else None  # a fresh count of this instance's layers
        if name is None:
            qualified = frame.prefix.removesuffix(".")
            prefix, called = frame.prefix, f"in block `{callee}` called at {where}"
            reserved = frame.reserved | aliases(block.body)
            numbering = frame.numbering or numbering  # its layers continue the caller's numbering
        else:
            qualified = frame.prefix + name
            if self.names.taken(qualified, where, frame):
                return [POISON]
            self.names.instances[qualified] = where
            prefix, called = qualified + ".", f"in block `{callee}` called as `{qualified}` at {where}"
            reserved = aliases(block.body)
        inner = Frame(
            env=info.env,
            values=ChainMap(values, info.env.consts),
            tensors=dict(zip(input_names, current, strict=True)),
            tensor_defs={n: where for n in input_names},
            prefix=prefix,
            trail=(*frame.trail, called),
            block_stack=(*frame.block_stack, callee),
            reserved=reserved,
            numbering=numbering,
        )
        try:
            self.run_body(block.body, inner)
        except Returned as result:
            if result.tensor != POISON and name is not None:
                self.graph.instances[qualified] = Instance(name=qualified, kind=callee, inputs=tuple(current),
                                                           input_names=tuple(input_names), output=result.tensor)
            return [result.tensor]
        if inner.undecided:
            return [POISON]  # the condition's error is reported; which branch returns is unknown
        self.sink.emit(Code.E503, f"block `{callee}` ends without `return`", loc(info.env, block.name),
                       hint="end the block with `return <chain>`", notes=frame.trail)
        return [POISON]
