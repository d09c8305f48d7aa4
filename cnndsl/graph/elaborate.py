"""Elaboration, AST -> graph: run the spec's statements, expanding blocks and repeats into primitive
nodes. The jobs around it have their own files: loading files and imports (loader.py), scopes and
constants (scope.py), binding arguments (binding.py) and naming layers (naming.py).

Every mistake found here becomes a located diagnostic; elaboration keeps going after one (a chain that
failed poisons the tensor it defines, so its consumers stay quiet instead of cascading).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ..diagnostics import CheckingStopped, DiagnosticSink, Location, UsageError, did_you_mean
from ..limits import DEFAULT_LIMITS, Limits
from ..ops import REGISTRY, Op
from ..syntax import ast as A
from .binding import Binder
from .expr import EvalError, TensorShape, Unknowable, Value, fmt_value
from .invariants import check_invariants
from .loader import Loader, resolved
from .model import INPUT, REPEAT, UNNAMED, Graph, Instance, Node
from .naming import Names, aliases, assignments
from .resolve import resolve_node
from .scope import POISON, BlockInfo, Constants, Frame, ModuleEnv, loc


class Returned(Exception):
    """A block body's `return`: unwinds to the call with the returned tensor."""

    def __init__(self, tensor: str):
        self.tensor = tensor


def build_graph(path: Path, input_shapes: dict[str, tuple[int, ...]] | None = None,
                sink: DiagnosticSink | None = None, limits: Limits = DEFAULT_LIMITS,
                import_path: Sequence[Path] = (), text: str | None = None) -> tuple[Graph, DiagnosticSink]:
    """Parse `path` (and its imports) and expand it into a graph, collecting diagnostics in `sink`.

    A layer with an error is left out and the tensors that depend on it are poisoned, so the graph
    built despite errors is still valid (and linted): the analysis passes can report the shape
    errors of the rest of the spec in the same run. Callers raise with ``sink.raise_if_errors()``.
    Imports resolve inside `path`'s directory and the directories of `import_path` only. At a limit
    (`limits`) the sink is stopped (``sink.stopped``) and the graph holds what was built until then.
    With `text`, that is the spec's content and `path` only names it (and where its imports resolve).
    """
    sink = sink or DiagnosticSink()
    elaborator = Elaborator(sink, limits, [path.parent, *import_path])
    if text is not None:
        elaborator.loader.given[resolved(path)] = text
    try:
        graph = elaborator.build(path, input_shapes or {})
    except CheckingStopped:
        graph = elaborator.graph
    graph.sources = dict(sink.sources)
    check_invariants(graph)
    return graph, sink


class Elaborator:
    def __init__(self, sink: DiagnosticSink, limits: Limits, import_roots: Sequence[Path]):
        self.sink = sink
        self.limits = limits
        self.graph = Graph("network")
        self.constants = Constants(sink)
        self.loader = Loader(sink, limits, import_roots, self.constants)
        self.binder = Binder(sink, self.constants)
        self.names = Names(self.graph, sink)
        self.layers = 0  # layers added to the graph
        self.steps = 0  # layers and block instances expanded: the work `limits.layers` bounds
        self.depth = 0  # bodies (blocks, `if`) being run inside one another
        self.overrides: dict[str, tuple[int, ...]] = {}
        self.named_at: Location | None = None
        self.unresolved: list[Node] = []  # added, not resolved yet (see `shapes_of`)

    def add_node(self, node: Node) -> None:
        self.graph.add(node)
        self.unresolved.append(node)

    def shapes(self, frame: Frame) -> TensorShape:
        return self.shapes_of(frame.tensors)

    def shapes_of(self, tensors: Mapping[str, str]) -> TensorShape:
        """The shape functions' view of `tensors` (name -> node): a tensor's shape is resolved on demand,
        with every node added before it (each node is resolved once, here or in the shape pass)."""
        def shape_of(ref: A.NameRef, axis: int | None) -> tuple[int, ...]:
            tensor = tensors.get(ref.name)
            if tensor is None:
                raise EvalError("E201", f"unknown tensor `{ref.name}`", ref, hint=did_you_mean(ref.name, list(tensors)))
            if tensor == POISON:
                raise Unknowable(ref)
            for node in self.unresolved:
                resolve_node(self.graph, node, self.sink)
            self.unresolved.clear()
            facts = self.graph.checked(tensor)
            if facts is None:
                raise Unknowable(ref)  # its layer's error is reported there
            shape = facts.shape
            read = axis % len(shape) if axis is not None and -len(shape) <= axis < len(shape) else None
            self.graph.shape_reads[(tensor, read)] = shape if read is None else shape[read]
            return shape
        return shape_of

    def build(self, path: Path, overrides: dict[str, tuple[int, ...]]) -> Graph:
        self.overrides = dict(overrides)
        env = self.loader.load(path, stack=(), shown=str(path))
        if env is None or env.module is None:
            # A file that failed to load or parse leaves its blocks undefined: expanding the network now
            # would only report every use of them as unknown.
            return self.graph
        module = env.module
        self.graph.name = path.stem
        if not module.statements:
            self.sink.emit("E002", "the spec is empty: no input, no layers", Location(env.path, 1, 1),
                           hint="start with `input x: 3 x 224 x 224`, then `output y = x -> conv(16, 3) -> relu`")
            return self.graph
        frame = Frame(env, ChainMap({}, env.consts), {}, {}, reserved=aliases(module.statements))
        self.run_body(module.statements, frame, module_level=True)
        self.check_network(module.statements, env)
        unknown = sorted(set(self.overrides) - set(self.graph.inputs))
        if unknown and not self.sink.has_errors:
            raise UsageError(f"--input names no declared input: {', '.join(unknown)} (declared: "
                             f"{', '.join(self.graph.inputs) or 'none'})")
        return self.graph


    # ---- statements -----------------------------------------------------------------------------
    def run_body(self, statements: Sequence[A.Node], frame: Frame, module_level: bool = False) -> None:
        """Run a body's statements in order. At module level, imports, constants and blocks were
        already handled when the file was loaded."""
        saved = frame.assigned, frame.position
        frame.assigned = assignments(statements, frame.env.path)
        self.depth += 1
        try:
            for index, stmt in enumerate(statements):
                frame.position = index
                if module_level and isinstance(stmt, A.Import | A.Const | A.BlockDef):
                    continue
                self.run_statement(stmt, frame)
        finally:
            self.depth -= 1
        frame.assigned, frame.position = saved

    def run_statement(self, stmt: A.Node, frame: Frame) -> None:
        env = frame.env
        match stmt:
            case A.Const():
                value = self.constants.define(stmt.name.name, stmt.value, frame.values, env, self.shapes(frame))
                if value is not None:
                    frame.values[stmt.name.name] = value
            case A.NetworkName():
                if frame.in_block:
                    self.structure("`network` names the whole file; it cannot appear in a block", env, stmt)
                elif self.named_at is not None:
                    self.sink.emit("E202", f"the network is named twice (first at {self.named_at})",
                                   loc(env, stmt.name))
                else:
                    self.graph.name = stmt.name.name
                    self.named_at = loc(env, stmt.name)
            case A.InputDecl():
                self.declare_input(stmt, frame)
            case A.BlockInputs():
                if not frame.in_block:
                    self.structure("an input of the network needs a shape: `input x: 3 x 224 x 224`", env, stmt)
            case A.Assign():
                self.bind_tensor(stmt.target, self.run_chain(stmt.chain, frame), frame)
            case A.ChainStmt():
                result = self.run_chain(stmt.chain, frame)
                if result != POISON and stmt.chain.layers:
                    self.graph.tensor_names.setdefault(result, ("", loc(env, stmt)))
            case A.OutputAssign():
                result = self.run_chain(stmt.chain, frame)
                self.bind_tensor(stmt.name, result, frame)
                self.declare_output(stmt.name, result, frame, stmt.training)
            case A.OutputNames():
                for ident in stmt.names:
                    self.declare_output(ident, self.lookup_tensor(ident, frame), frame, stmt.training)
            case A.Return():
                if not frame.in_block:
                    self.structure("`return` is only meaningful inside a block", env, stmt,
                                   hint="declare the network's result with `output y = ...`")
                    return
                raise Returned(self.run_chain(stmt.chain, frame))
            case A.If():
                condition = self.constants.evaluate(stmt.condition, frame.values, env, frame.trail, self.shapes(frame))
                if condition is not None and not isinstance(condition, bool):
                    self.sink.emit("E208", f"the condition of `if` must be `true` or `false`; got "
                                   f"{fmt_value(condition)}", loc(env, stmt.condition), notes=frame.trail)
                if not isinstance(condition, bool):
                    frame.undecided = True  # a `return` may be in the branch not taken: no E503 for it
                    return
                self.run_body(stmt.then if condition else stmt.otherwise, frame)
            case A.Import() | A.BlockDef():
                self.structure("imports and blocks are defined at the top level of a file, outside `if`",
                               env, stmt)

    def structure(self, message: str, env: ModuleEnv, node: A.Node, hint: str | None = None) -> None:
        self.sink.emit("E209", message, loc(env, node), hint=hint)

    def declare_input(self, stmt: A.InputDecl, frame: Frame) -> None:
        env = frame.env
        where = loc(env, stmt.name)
        if frame.in_block:
            self.structure("a block's inputs have no shape: write `input a, b` (or use `in`)", env, stmt)
            return
        name = stmt.name.name
        if name in frame.tensors:
            self.sink.emit("E202", f"`{name}` is already defined at {frame.tensor_defs[name]}", where)
            return
        shape = self.overrides.get(name)
        if shape is not None and len(shape) != len(stmt.shape):
            # `--input image=3x224` on a 2-D network would silently turn every conv into a conv1d
            declared = " x ".join(str(d.value) if isinstance(d, A.IntLit) else "..." for d in stmt.shape)
            raise UsageError(f"--input {name}={'x'.join(map(str, shape))} has {len(shape)} dimension(s), but `{name}` "
                             f"is declared with {len(stmt.shape)} at {where}: {declared}; an override changes sizes, "
                             "not the rank")
        if shape is None:
            dims = [self.constants.evaluate(d, frame.values, env, tensor_shape=self.shapes(frame)) for d in stmt.shape]
            problem = next((i for i, d in enumerate(dims) if d is None or isinstance(d, bool)
                            or not isinstance(d, int) or d <= 0), None)
            if problem is not None:
                dim, expr = dims[problem], stmt.shape[problem]
                if dim is None:
                    pass  # reported by the evaluator
                elif isinstance(dim, bool) or not isinstance(dim, int):
                    self.sink.emit("E205", f"input dimensions are integers; got {fmt_value(dim)}", loc(env, expr),
                                   hint="separate dimensions with `x`: `input x: 3 x 224 x 224`")
                else:
                    self.sink.emit("E304", f"input `{name}` has a non-positive dimension {dim}", loc(env, expr),
                                   hint="sizes are per sample, channels first: `input x: 3 x 224 x 224`")
                frame.tensors[name] = POISON  # declared all the same: a second declaration is still E202
                frame.tensor_defs[name] = where
                return
            shape = tuple(int(d) for d in dims)  # type: ignore[arg-type]
        if self.names.taken(name, where, frame):
            return
        self.add_node(Node(name=name, op=INPUT, params=None, inputs=(), location=where, shape=shape))
        self.graph.inputs[name] = name
        frame.tensors[name] = name
        frame.tensor_defs[name] = where

    def declare_output(self, ident: A.Ident, tensor: str, frame: Frame, training: bool = False) -> None:
        where = loc(frame.env, ident)
        if frame.in_block:
            self.structure("`output` declares the network's outputs; a block ends with `return`", frame.env, ident)
            return
        if ident.name in self.graph.outputs:
            self.sink.emit("E202", f"output `{ident.name}` is declared twice", where)
            return
        if tensor != POISON:
            self.graph.outputs[ident.name] = tensor
            if training:
                self.graph.training_outputs.add(ident.name)

    def check_network(self, statements: Sequence[A.Node], env: ModuleEnv) -> None:
        if self.sink.has_errors:
            return
        if not self.graph.inputs:
            blocks = [s for s in statements if isinstance(s, A.BlockDef)]
            if blocks and all(isinstance(s, A.BlockDef | A.Const | A.Import) for s in statements):
                shown = ", ".join(f"{b.name.name}({', '.join(p.name.name for p in b.params)})" for b in blocks[:20])
                more = f" and {len(blocks) - 20} more" if len(blocks) > 20 else ""
                self.sink.emit("I103", f"a block library: {len(blocks)} block(s), {shown}{more}; no network",
                               loc(env, blocks[0]),
                               hint='a block\'s body is checked where a network calls it: `import "file.cnn"` from '
                                    "a network spec, or declare `input` and `output` here")
            else:
                self.sink.emit("E209", "the network declares no input", loc(env, statements[0]),
                               hint="declare one with its per-sample shape: `input x: 3 x 224 x 224`")
        elif not self.graph.outputs:
            self.sink.emit("E209", "the network declares no output", loc(env, statements[-1]),
                           hint="name the result: `output y = x -> ...`, or `output y` for an existing tensor")
        elif not self.graph.inference_outputs:
            self.sink.emit("E209", "every output of the network is a `training output`: inference computes nothing",
                           loc(env, statements[-1]), hint="declare the network's result with `output y = ...`")

    # ---- tensors --------------------------------------------------------------------------------
    def bind_tensor(self, ident: A.Ident, tensor: str, frame: Frame) -> None:
        where = loc(frame.env, ident)
        name = ident.name
        if name in frame.tensors and frame.tensors[name] != POISON:
            self.sink.emit("E202", f"tensor `{name}` is already defined at {frame.tensor_defs[name]}", where,
                           hint="give each tensor its own name", notes=frame.trail)
            return
        if name in frame.values:
            self.sink.emit("E202", f"`{name}` is already a constant or block parameter", where, notes=frame.trail)
            return
        frame.tensors[name] = tensor
        frame.tensor_defs[name] = where
        if tensor != POISON and tensor not in self.graph.inputs:
            self.graph.tensor_names.setdefault(tensor, (name, where))

    def lookup_tensor(self, ident: A.Ident, frame: Frame) -> str:
        name = ident.name
        if name in frame.tensors:
            return frame.tensors[name]
        where = loc(frame.env, ident)
        later = frame.defined_later(name)
        if later is not None:
            self.sink.emit("E400", f"tensor `{name}` is used before it is defined at {later}", where,
                           hint="a network is a DAG: define tensors before using them (no loops back)",
                           notes=frame.trail)
        elif name in frame.values:
            self.sink.emit("E201", f"`{name}` is a value ({fmt_value(frame.values[name])}), not a tensor", where,
                           notes=frame.trail)
        else:
            hint = did_you_mean(name, list(frame.tensors))
            if hint is None and (name in REGISTRY or name in frame.env.blocks):
                hint = f"a chain starts from a tensor: `x -> {name}`"
            elif hint is None and frame.in_block and name == "in":
                hint = "this block declares its inputs with `input ...`; use those names"
            self.sink.emit("E201", f"unknown tensor `{name}`", where, hint=hint, notes=frame.trail)
        return POISON

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
            self.sink.emit("E207", f"a list of {len(current)} tensors must feed a layer that merges them",
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
                self.sink.emit("E208", f"the condition after `if` must be `true` or `false`; got {fmt_value(keep)}",
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
            self.sink.emit("E200", f"unknown layer `{callee}`: not an op or a block in scope",
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
                self.sink.emit("E205", f"a repeat count is a non-negative integer; got {fmt_value(count)}",
                               loc(env, layer.repeat), notes=frame.trail)
                return [POISON]
            if len(current) != 1:
                self.sink.emit("E207", f"`{callee} x {count}` repeats a layer fed by {len(current)} tensors; each copy "
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
            self.sink.emit("E209", f"`as {UNNAMED}` gives a block instance no name of its own; `{callee}` (an op) "
                           "needs one", loc(env, layer.alias), hint="name it (`as name`) or leave the name out",
                           notes=frame.trail)
            return False
        index = layer.repeat_index
        if index is not None and index.name in frame.values:
            self.sink.emit("E202", f"the repeat index `{index.name}` hides the constant or parameter `{index.name}`",
                           loc(env, index), hint="give the index another name", notes=frame.trail)
            return False
        if layer.alias_index is not None and (index is None or layer.alias is None):
            self.sink.emit("E209", "a name with `{...}` names the copies of a repeat by its index", loc(env, layer),
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
            self.sink.emit("E205", f"the number in a name is a non-negative integer; got {fmt_value(value)}",
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
        self.sink.emit("E210", message, where, notes=frame.trail,
                       hint="check repeat counts (`x N`) and nested blocks; a network this large is checked with "
                            "--max-layers N")
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
            self.sink.emit("E502", f"block `{callee}` calls itself: {chain}", where,
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
        self.sink.emit("E503", f"block `{callee}` ends without `return`", loc(info.env, block.name),
                       hint="end the block with `return <chain>`", notes=frame.trail)
        return [POISON]
