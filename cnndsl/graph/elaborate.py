"""Elaboration, AST -> graph: run the spec's statements, expanding blocks and repeats into primitive
nodes. Chains, layers and blocks are expanded in expand.py; the jobs around it have their own files:
loading files and imports (loader.py), scopes and constants (scope.py), binding arguments (binding.py)
and naming layers (naming.py).

Every mistake found here becomes a located diagnostic; elaboration keeps going after one (a chain that
failed poisons the tensor it defines, so its consumers stay quiet instead of cascading).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..diagnostics import CheckingStopped, Code, DiagnosticSink, Location, Option, UsageError, did_you_mean
from ..limits import DEFAULT_LIMITS, Limits
from ..ops import REGISTRY
from ..syntax import ast as A
from .binding import Binder
from .expand import LayerExpansion, Returned
from .expr import EvalError, TensorShape, Unknowable, Value, fmt_value
from .invariants import check_invariants
from .loader import Loader, resolved
from .model import INPUT, Graph, Node
from .naming import Names, aliases, assignments
from .resolve import resolve_node
from .scope import POISON, Constants, Frame, ModuleEnv, loc


def build_graph(path: Path, input_shapes: dict[str, tuple[int, ...]] | None = None,
                sink: DiagnosticSink | None = None, limits: Limits = DEFAULT_LIMITS,
                import_path: Sequence[Path] = (), text: str | None = None,
                constants: Mapping[str, Value] | None = None) -> tuple[Graph, DiagnosticSink]:
    """Parse `path` (and its imports) and expand it into a graph, collecting diagnostics in `sink`.

    A layer with an error is left out and the tensors that depend on it are poisoned, so the graph
    built despite errors is still valid (and linted): the analysis passes can report the shape
    errors of the rest of the spec in the same run. Callers raise with ``sink.raise_if_errors()``.
    Imports resolve inside `path`'s directory and the directories of `import_path` only. At a limit
    (`limits`) the sink is stopped (``sink.stopped``) and the graph holds what was built until then.
    With `text`, that is the spec's content and `path` only names it (and where its imports resolve).
    `constants` replace the values of the spec file's own top-level constants (UsageError for a name it does
    not declare, or a value of another kind).
    """
    sink = sink or DiagnosticSink()
    elaborator = Elaborator(sink, limits, [path.parent, *import_path])
    if text is not None:
        elaborator.loader.given[resolved(path)] = text
    try:
        graph = elaborator.build(path, input_shapes or {}, constants)
    except CheckingStopped:
        graph = elaborator.graph
    graph.sources = dict(sink.sources)
    check_invariants(graph)
    return graph, sink


class Elaborator(LayerExpansion):
    """Runs a spec's statements (this file); chains, layers and blocks are expanded by `LayerExpansion`
    (expand.py)."""

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
                raise EvalError(Code.E201,
                                f"unknown tensor `{ref.name}`", ref, hint=did_you_mean(ref.name, list(tensors)))
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

    def build(self, path: Path, overrides: dict[str, tuple[int, ...]], constants: Mapping[str, Value] | None = None
              ) -> Graph:
        self.overrides = dict(overrides)
        self.constants.overrides, self.constants.root = dict(constants or {}), str(path)
        env = self.loader.load(path, stack=(), shown=str(path))
        if env is None or env.module is None:
            # A file that failed to load or parse leaves its blocks undefined: expanding the network now
            # would only report every use of them as unknown.
            return self.graph
        module = env.module
        self.graph.name = path.stem
        if not module.statements:
            self.sink.emit(Code.E002, "the spec is empty: no input, no layers", Location(env.path, 1, 1),
                           hint="start with `input x: 3 x 224 x 224`, then `output y = x -> conv(16, 3) -> relu`")
            return self.graph
        frame = Frame(env, ChainMap({}, env.consts), {}, {}, reserved=aliases(module.statements))
        self.run_body(module.statements, frame, module_level=True)
        self.check_network(module.statements, env)
        unknown = sorted(set(self.overrides) - set(self.graph.inputs))
        if unknown and not self.sink.has_errors:
            raise UsageError(f"an input override names no declared input: {', '.join(unknown)} (declared: "
                             f"{', '.join(self.graph.inputs) or 'none'})", option=Option.INPUTS)
        unset = sorted(set(self.constants.overrides) - set(self.constants.declared))
        if unset and not self.sink.has_errors:
            declared = ", ".join(f"{name} = {fmt_value(value)}" for name, value in self.constants.declared.items())
            raise UsageError(f"{', '.join(unset)}: not a constant declared at the top of {path} (declared: "
                             f"{declared or 'none'}); constants of imported files and blocks cannot be set",
                             option=Option.CONSTANTS)
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
                    self.sink.emit(Code.E202, f"the network is named twice (first at {self.named_at})",
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
                    self.sink.emit(Code.E208, f"the condition of `if` must be `true` or `false`; got "
                                   f"{fmt_value(condition)}", loc(env, stmt.condition), notes=frame.trail)
                if not isinstance(condition, bool):
                    frame.undecided = True  # a `return` may be in the branch not taken: no E503 for it
                    return
                self.run_body(stmt.then if condition else stmt.otherwise, frame)
            case A.Import() | A.BlockDef():
                self.structure("imports and blocks are defined at the top level of a file, outside `if`",
                               env, stmt)

    def structure(self, message: str, env: ModuleEnv, node: A.Node, hint: str | None = None) -> None:
        self.sink.emit(Code.E209, message, loc(env, node), hint=hint)

    def declare_input(self, stmt: A.InputDecl, frame: Frame) -> None:
        env = frame.env
        where = loc(env, stmt.name)
        if frame.in_block:
            self.structure("a block's inputs have no shape: write `input a, b` (or use `in`)", env, stmt)
            return
        name = stmt.name.name
        if name in frame.tensors:
            self.sink.emit(Code.E202, f"`{name}` is already defined at {frame.tensor_defs[name]}", where)
            return
        shape = self.overrides.get(name)
        if shape is not None and len(shape) != len(stmt.shape):
            # `--input image=3x224` on a 2-D network would silently turn every conv into a conv1d
            declared = " x ".join(str(d.value) if isinstance(d, A.IntLit) else "..." for d in stmt.shape)
            raise UsageError(f"the input override {name}={'x'.join(map(str, shape))} has {len(shape)} dimension(s), "
                             f"but `{name}` is declared with {len(stmt.shape)} at {where}: {declared}; an override "
                             "changes sizes, not the rank", option=Option.INPUTS)
        if shape is None:
            dims = [self.constants.evaluate(d, frame.values, env, tensor_shape=self.shapes(frame)) for d in stmt.shape]
            problem = next((i for i, d in enumerate(dims) if d is None or isinstance(d, bool)
                            or not isinstance(d, int) or d <= 0), None)
            if problem is not None:
                dim, expr = dims[problem], stmt.shape[problem]
                if dim is None:
                    pass  # reported by the evaluator
                elif isinstance(dim, bool) or not isinstance(dim, int):
                    self.sink.emit(Code.E205, f"input dimensions are integers; got {fmt_value(dim)}", loc(env, expr),
                                   hint="separate dimensions with `x`: `input x: 3 x 224 x 224`")
                else:
                    self.sink.emit(Code.E304, f"input `{name}` has a non-positive dimension {dim}", loc(env, expr),
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
            self.sink.emit(Code.E202, f"output `{ident.name}` is declared twice", where)
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
                self.sink.emit(Code.I103, f"a block library: {len(blocks)} block(s), {shown}{more}; no network",
                               loc(env, blocks[0]),
                               hint='a block\'s body is checked where a network calls it: `import "file.cnn"` from '
                                    "a network spec, or declare `input` and `output` here")
            else:
                self.sink.emit(Code.E209, "the network declares no input", loc(env, statements[0]),
                               hint="declare one with its per-sample shape: `input x: 3 x 224 x 224`")
        elif not self.graph.outputs:
            self.sink.emit(Code.E209, "the network declares no output", loc(env, statements[-1]),
                           hint="name the result: `output y = x -> ...`, or `output y` for an existing tensor")
        elif not self.graph.inference_outputs:
            self.sink.emit(Code.E209, "every output of the network is a `training output`: inference computes nothing",
                           loc(env, statements[-1]), hint="declare the network's result with `output y = ...`")

    # ---- tensors --------------------------------------------------------------------------------
    def bind_tensor(self, ident: A.Ident, tensor: str, frame: Frame) -> None:
        where = loc(frame.env, ident)
        name = ident.name
        if name in frame.tensors and frame.tensors[name] != POISON:
            self.sink.emit(Code.E202, f"tensor `{name}` is already defined at {frame.tensor_defs[name]}", where,
                           hint="give each tensor its own name", notes=frame.trail)
            return
        if name in frame.values:
            self.sink.emit(Code.E202, f"`{name}` is already a constant or block parameter", where, notes=frame.trail)
            return
        frame.tensors[name] = tensor
        frame.tensor_defs[name] = where
        if tensor != POISON and tensor not in self.graph.inputs:
            self.graph.tensor_names.setdefault(tensor, (name, where))

    def lookup_tensor(self, ident: A.Ident, frame: Frame) -> str:
        name = ident.name
        if name in frame.tensors:
            return frame.tensors[name]
        if "." in name:
            return self.lookup_path(ident, frame)
        where = loc(frame.env, ident)
        later = frame.defined_later(name)
        if later is not None:
            self.sink.emit(Code.E400, f"tensor `{name}` is used before it is defined at {later}", where,
                           hint="a network is a DAG: define tensors before using them (no loops back)",
                           notes=frame.trail)
        elif name in frame.values:
            self.sink.emit(Code.E201, f"`{name}` is a value ({fmt_value(frame.values[name])}), not a tensor", where,
                           notes=frame.trail)
        else:
            hint = did_you_mean(name, list(frame.tensors))
            if hint is None and (name in REGISTRY or name in frame.env.blocks):
                hint = f"a chain starts from a tensor: `x -> {name}`"
            elif hint is None and frame.in_block and name == "in":
                hint = "this block declares its inputs with `input ...`; use those names"
            self.sink.emit(Code.E201, f"unknown tensor `{name}`", where, hint=hint, notes=frame.trail)
        return POISON

    def lookup_path(self, ident: A.Ident, frame: Frame) -> str:
        """`backbone.layer3`: the tensor a layer, block instance or repeat inside an instance called in this
        body computes (a layer by its name, an instance or repeat by what it returns)."""
        qualified = frame.prefix + ident.name
        if qualified in self.graph.instances:
            return self.graph.instances[qualified].output
        if qualified in self.graph:
            return qualified
        first = ident.name.partition(".")[0]
        if (frame.prefix + first) in self.names.instances and frame.prefix + first not in self.graph.instances:
            return POISON  # that instance failed, which is reported
        inside = frame.prefix + first + "."
        names = [*self.graph.instances, *(node.name for node in self.graph.nodes())]
        known = sorted(name.removeprefix(frame.prefix) for name in names if name.startswith(inside))
        hint = did_you_mean(ident.name, known) if known else None
        if not known:
            hint = (f"`{first}` is a tensor: a path starts at a block instance or repeat called in this body"
                    if first in frame.tensors else
                    f"a path starts at a block instance or repeat called before it in this body (`... as {first}`)")
        here = f" (`{qualified}` in the network)" if frame.prefix else ""
        self.sink.emit(Code.E201, f"unknown tensor `{ident.name}`: no layer, block instance or repeat has that "
                                  f"path{here}", loc(frame.env, ident), hint=hint, notes=frame.trail)
        return POISON
