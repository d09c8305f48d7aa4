"""AST -> graph: load imports, evaluate constants, expand blocks and repeats into primitive nodes.

Every mistake found here becomes a located diagnostic; the builder keeps going after one (a chain
that failed poisons the tensor it defines, so its consumers stay quiet instead of cascading).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..diagnostics import CheckingStopped, DiagnosticSink, Location, SpecError, UsageError, did_you_mean
from ..limits import DEFAULT_LIMITS, Limits
from ..ops import REGISTRY, Op
from ..syntax import ast as A
from ..syntax.parse import parse
from ..syntax.source import read_source
from .expr import EvalError, Symbol, Value, evaluate, fmt_value
from .lint import lint
from .model import INPUT, Graph, Node

POISON = "\x00poisoned"  # stands for a tensor whose definition failed; never reported again


@dataclass
class BlockInfo:
    definition: A.BlockDef
    env: ModuleEnv


@dataclass
class ModuleEnv:
    """What a file defines and imports: the namespace its block bodies resolve names in."""

    path: str
    module: A.Module | None = None
    consts: dict[str, Value] = field(default_factory=dict)
    const_origin: dict[str, Location] = field(default_factory=dict)
    blocks: dict[str, BlockInfo] = field(default_factory=dict)


@dataclass
class Frame:
    """Execution state of one body: the top level or one block instance."""

    env: ModuleEnv
    values: ChainMap[str, Value]
    tensors: dict[str, str]
    tensor_defs: dict[str, Location]
    prefix: str = ""
    trail: tuple[str, ...] = ()
    block_stack: tuple[str, ...] = ()
    block_path: tuple[str, ...] = ()
    reserved: set[str] = field(default_factory=set)  # `as` names of this body: auto-names avoid them
    counters: dict[str, int] = field(default_factory=dict)
    # Tensors each statement of the running body assigns, and the statement running: a name used before
    # a later statement assigns it is reported as a use before definition.
    assigned: dict[str, tuple[int, Location]] = field(default_factory=dict)
    position: int = 0

    def defined_later(self, name: str) -> Location | None:
        entry = self.assigned.get(name)
        return entry[1] if entry is not None and entry[0] > self.position else None

    @property
    def in_block(self) -> bool:
        return bool(self.block_stack)


class _Returned(Exception):
    def __init__(self, tensor: str):
        self.tensor = tensor


def build_graph(path: Path, input_shapes: dict[str, tuple[int, ...]] | None = None,
                sink: DiagnosticSink | None = None, limits: Limits = DEFAULT_LIMITS,
                import_path: Sequence[Path] = ()) -> tuple[Graph, DiagnosticSink]:
    """Parse `path` (and its imports) and expand it into a graph, collecting diagnostics in `sink`.

    A layer with an error is left out and the tensors that depend on it are poisoned, so the graph
    built despite errors is still valid (and linted): the analysis passes can report the shape
    errors of the rest of the spec in the same run. Callers raise with ``sink.raise_if_errors()``.
    Imports resolve inside `path`'s directory and the directories of `import_path` only. At a limit
    (`limits`) the sink is stopped (``sink.stopped``) and the graph holds what was built until then.
    """
    sink = sink or DiagnosticSink()
    builder = _Builder(sink, limits, [path.parent, *import_path])
    try:
        graph = builder.build(path, input_shapes or {})
    except CheckingStopped:
        graph = builder.graph
    graph.sources = dict(sink.sources)
    lint(graph)
    return graph, sink


class _Builder:
    def __init__(self, sink: DiagnosticSink, limits: Limits, import_roots: Sequence[Path]):
        self.sink = sink
        self.limits = limits
        self.import_roots = [_resolved(root) for root in import_roots]
        self.failed: set[str] = set()  # constants whose definition failed (already reported)
        self.instances: dict[str, Location] = {}  # block instances by qualified name: their names are taken
        self.layers = 0  # layers added to the graph
        self.steps = 0  # layers and block instances expanded: the work `limits.layers` bounds
        self.depth = 0  # bodies (blocks, `if`) being run inside one another
        self.envs: dict[Path, ModuleEnv] = {}
        self.graph = Graph("network")
        self.overrides: dict[str, tuple[int, ...]] = {}
        self.unloaded = False  # a file could not be read, parsed or imported (cyclically)
        self.named_at: Location | None = None

    # ---- modules and imports --------------------------------------------------------------------
    def build(self, path: Path, overrides: dict[str, tuple[int, ...]]) -> Graph:
        self.overrides = dict(overrides)
        env = self.load(path, stack=(), shown=str(path))
        if env is None or env.module is None or self.unloaded:
            # A file that failed to load or parse leaves its blocks undefined: expanding the network now
            # would only report every use of them as unknown.
            return self.graph
        module = env.module
        self.graph.name = path.stem
        if not module.statements:
            self.sink.emit("E002", "the spec is empty: no input, no layers", Location(env.path, 1, 1),
                           hint="start with `input x: 3 x 224 x 224`, then `output y = x -> conv(16, 3) -> relu`")
            return self.graph
        frame = Frame(env, ChainMap({}, env.consts), {}, {}, reserved=_aliases(module.statements))
        self.run_body(module.statements, frame, module_level=True)
        self.check_network(module.statements, env)
        unknown = sorted(set(self.overrides) - set(self.graph.inputs))
        if unknown and not self.sink.has_errors:
            raise UsageError(f"--input names no declared input: {', '.join(unknown)} (declared: "
                             f"{', '.join(self.graph.inputs) or 'none'})")
        return self.graph

    def load(self, path: Path, stack: tuple[Path, ...], shown: str, importer: Location | None = None
             ) -> ModuleEnv | None:
        resolved = _resolved(path)
        if resolved in stack:
            cycle = " -> ".join(p.name for p in (*stack[stack.index(resolved):], resolved))
            self.sink.emit("E501", f"cyclic import: {cycle}", importer,
                           hint="move the shared blocks into a third file that both import")
            self.unloaded = True
            return None
        if resolved in self.envs:
            return self.envs[resolved]
        try:
            source = read_source(path, shown, self.limits.spec_bytes)
        except UsageError as exc:
            if importer is None:
                raise
            what = exc.diagnostic.message if exc.diagnostic else str(exc)
            self.sink.emit("E500", f'cannot import "{shown}": {what}', importer,
                           hint="import paths are relative to the importing file, or to an --import-path directory")
            self.unloaded = True
            return None
        self.sink.sources[source.path] = source  # diagnostics quote their line from it
        try:
            module = parse(source, self.limits)
        except SpecError as exc:
            self.sink.extend(exc.diagnostics)
            self.unloaded = True
            return None
        env = ModuleEnv(source.path, module)
        self.envs[resolved] = env
        for stmt in module.statements:
            if isinstance(stmt, A.Import):
                self.import_into(env, stmt, path, (*stack, resolved))
            elif isinstance(stmt, A.Const):
                self.define_const(env, stmt)
            elif isinstance(stmt, A.BlockDef):
                self.define_block(env, stmt)
        return env

    def import_into(self, env: ModuleEnv, stmt: A.Import, importer_path: Path, stack: tuple[Path, ...]) -> None:
        target = self.resolve_import(stmt, importer_path, env)
        if target is None:
            self.unloaded = True
            return
        shown = str(Path(env.path).parent / stmt.path) if not Path(stmt.path).is_absolute() else stmt.path
        child = self.load(target, stack, shown, self.loc(env, stmt))
        if child is None:
            return
        for name, info in child.blocks.items():
            existing = env.blocks.get(name)
            if existing is not None and existing.definition is not info.definition:
                self.duplicate("block", name, self.loc(env, stmt), self.loc(existing.env, existing.definition.name))
            env.blocks[name] = info
        for name, value in child.consts.items():
            if name in env.consts and env.const_origin[name] != child.const_origin[name]:
                self.duplicate("constant", name, self.loc(env, stmt), env.const_origin[name])
            env.consts[name] = value
            env.const_origin[name] = child.const_origin[name]

    def resolve_import(self, stmt: A.Import, importer_path: Path, env: ModuleEnv) -> Path | None:
        """The file an import names: relative to the importing file, else to a directory of the import
        path; it must be a `.cnn` file inside the spec's directory tree or the import path's (E500), so a
        downloaded spec cannot read `/etc/shadow` or `../../.ssh/...` into its error messages."""
        where = self.loc(env, stmt)
        name = stmt.path
        if "\x00" in name or not name.strip():
            self.sink.emit("E500", f"import path {name!r} is not a file name", where)
            return None
        if not name.endswith(".cnn"):
            self.sink.emit("E500", f'import "{name}": only .cnn files can be imported', where,
                           hint='name a spec file: `import "blocks.cnn"`')
            return None
        relative = Path(name)
        candidates = [relative] if relative.is_absolute() else [importer_path.parent / relative,
                                                                  *(root / relative for root in self.import_roots[1:])]
        existing = next((c for c in candidates if _exists(c)), candidates[0])
        resolved = _resolved(existing)
        if not any(resolved.is_relative_to(root) for root in self.import_roots):
            allowed = ", ".join(str(root) for root in self.import_roots)
            self.sink.emit("E500", f'import "{name}" resolves to {resolved}, outside the directories specs may '
                           f"import from ({allowed})", where,
                           hint="imports stay inside the spec's directory; allow another directory with "
                                "--import-path DIR (or CNNDSL_PATH)")
            return None
        return existing

    def define_const(self, env: ModuleEnv, stmt: A.Const) -> None:
        where = self.loc(env, stmt.name)
        if stmt.name.name in env.consts:
            self.duplicate("constant", stmt.name.name, where, env.const_origin[stmt.name.name])
            return
        value = self.evaluate(stmt.value, env.consts, env)
        if value is None:
            self.failed.add(stmt.name.name)
            return
        env.consts[stmt.name.name] = value
        env.const_origin[stmt.name.name] = where

    def define_block(self, env: ModuleEnv, stmt: A.BlockDef) -> None:
        name = stmt.name.name
        if name in env.blocks:
            existing = env.blocks[name]
            self.duplicate("block", name, self.loc(env, stmt.name), self.loc(existing.env, existing.definition.name))
            return
        if name in REGISTRY:
            self.sink.emit("E202", f"block `{name}` has the name of a built-in op", self.loc(env, stmt.name),
                           hint="choose another name; ops cannot be redefined")
            return
        seen: set[str] = set()
        defaulted = False
        for param in stmt.params:
            where = self.loc(env, param.name)
            if param.name.name in seen:
                self.sink.emit("E503", f"parameter `{param.name.name}` of block `{name}` is declared twice", where)
            seen.add(param.name.name)
            if param.default is None and defaulted:
                self.sink.emit("E503", f"parameter `{param.name.name}` of block `{name}` has no default but follows "
                               "one that has", where, hint="put parameters with defaults last")
            defaulted = defaulted or param.default is not None
        env.blocks[name] = BlockInfo(stmt, env)

    # ---- statements -----------------------------------------------------------------------------
    def run_body(self, statements: Sequence[A.Node], frame: Frame, module_level: bool = False) -> None:
        """Run a body's statements in order. At module level, imports, constants and blocks were
        already handled when the file was loaded."""
        saved = frame.assigned, frame.position
        frame.assigned = _assignments(statements, frame.env.path)
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
                value = self.evaluate(stmt.value, frame.values, env)
                if value is not None:
                    frame.values[stmt.name.name] = value
                else:
                    self.failed.add(stmt.name.name)
            case A.NetworkName():
                if frame.in_block:
                    self.structure("`network` names the whole file; it cannot appear in a block", env, stmt)
                elif self.named_at is not None:
                    self.sink.emit("E202", f"the network is named twice (first at {self.named_at})",
                                   self.loc(env, stmt.name))
                else:
                    self.graph.name = stmt.name.name
                    self.named_at = self.loc(env, stmt.name)
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
                    self.graph.tensor_names.setdefault(result, ("", self.loc(env, stmt)))
            case A.OutputAssign():
                result = self.run_chain(stmt.chain, frame)
                self.bind_tensor(stmt.name, result, frame)
                self.declare_output(stmt.name, result, frame)
            case A.OutputNames():
                for ident in stmt.names:
                    self.declare_output(ident, self.lookup_tensor(ident, frame), frame)
            case A.Return():
                if not frame.in_block:
                    self.structure("`return` is only meaningful inside a block", env, stmt,
                                   hint="declare the network's result with `output y = ...`")
                    return
                raise _Returned(self.run_chain(stmt.chain, frame))
            case A.If():
                condition = self.evaluate(stmt.condition, frame.values, env)
                if condition is None:
                    return
                if not isinstance(condition, bool):
                    self.sink.emit("E208", f"the condition of `if` must be `true` or `false`; got "
                                   f"{fmt_value(condition)}", self.loc(env, stmt.condition), notes=frame.trail)
                    return
                self.run_body(stmt.then if condition else stmt.otherwise, frame)
            case A.Import() | A.BlockDef():
                self.structure("imports and blocks are defined at the top level of a file, outside `if`",
                               env, stmt)

    def structure(self, message: str, env: ModuleEnv, node: A.Node, hint: str | None = None) -> None:
        self.sink.emit("E209", message, self.loc(env, node), hint=hint)

    def declare_input(self, stmt: A.InputDecl, frame: Frame) -> None:
        env = frame.env
        where = self.loc(env, stmt.name)
        if frame.in_block:
            self.structure("a block's inputs have no shape: write `input a, b` (or use `in`)", env, stmt)
            return
        name = stmt.name.name
        if name in frame.tensors:
            self.sink.emit("E202", f"`{name}` is already defined at {frame.tensor_defs[name]}", where)
            return
        shape = self.overrides.get(name)
        if shape is None:
            dims = [self.evaluate(d, frame.values, env) for d in stmt.shape]
            problem = next((i for i, d in enumerate(dims) if d is None or isinstance(d, bool)
                            or not isinstance(d, int) or d <= 0), None)
            if problem is not None:
                dim, expr = dims[problem], stmt.shape[problem]
                if dim is None:
                    pass  # reported by the evaluator
                elif isinstance(dim, bool) or not isinstance(dim, int):
                    self.sink.emit("E205", f"input dimensions are integers; got {fmt_value(dim)}", self.loc(env, expr),
                                   hint="separate dimensions with `x`: `input x: 3 x 224 x 224`")
                else:
                    self.sink.emit("E304", f"input `{name}` has a non-positive dimension {dim}", self.loc(env, expr),
                                   hint="sizes are per sample, channels first: `input x: 3 x 224 x 224`")
                frame.tensors[name] = POISON  # declared all the same: a second declaration is still E202
                frame.tensor_defs[name] = where
                return
            shape = tuple(int(d) for d in dims)  # type: ignore[arg-type]
        if self.taken(name, where, frame):
            return
        self.graph.add(Node(name=name, op=INPUT, params=None, inputs=(), location=where, shape=shape))
        self.graph.inputs[name] = name
        frame.tensors[name] = name
        frame.tensor_defs[name] = where

    def declare_output(self, ident: A.Ident, tensor: str, frame: Frame) -> None:
        where = self.loc(frame.env, ident)
        if frame.in_block:
            self.structure("`output` declares the network's outputs; a block ends with `return`", frame.env, ident)
            return
        if ident.name in self.graph.outputs:
            self.sink.emit("E202", f"output `{ident.name}` is declared twice", where)
            return
        if tensor != POISON:
            self.graph.outputs[ident.name] = tensor

    def check_network(self, statements: Sequence[A.Node], env: ModuleEnv) -> None:
        if self.sink.has_errors:
            return
        if not self.graph.inputs:
            blocks = sum(isinstance(s, A.BlockDef) for s in statements)
            if blocks and all(isinstance(s, A.BlockDef | A.Const | A.Import) for s in statements):
                self.sink.emit("E209", f"this file defines {blocks} block(s) but no network",
                               self.loc(env, statements[0]),
                               hint='import it from a network spec (`import "file.cnn"`), or declare `input` and '
                                    "`output` here")
            else:
                self.sink.emit("E209", "the network declares no input", self.loc(env, statements[0]),
                               hint="declare one with its per-sample shape: `input x: 3 x 224 x 224`")
        elif not self.graph.outputs:
            self.sink.emit("E209", "the network declares no output", self.loc(env, statements[-1]),
                           hint="name the result: `output y = x -> ...`, or `output y` for an existing tensor")

    # ---- tensors --------------------------------------------------------------------------------
    def bind_tensor(self, ident: A.Ident, tensor: str, frame: Frame) -> None:
        where = self.loc(frame.env, ident)
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
        where = self.loc(frame.env, ident)
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
                           self.loc(frame.env, chain.source), hint="`[a, b] -> add` or `[a, b] -> concat`",
                           notes=frame.trail)
            return POISON
        return current[0]

    def apply_layer(self, layer: A.Layer, current: list[str], frame: Frame) -> list[str]:
        env = frame.env
        if layer.guard is not None:
            keep = self.evaluate(layer.guard, frame.values, env, frame.trail)
            if keep is None:
                return [POISON]
            if not isinstance(keep, bool):
                self.sink.emit("E208", f"the condition after `if` must be `true` or `false`; got {fmt_value(keep)}",
                               self.loc(env, layer.guard), notes=frame.trail)
                return [POISON]
            if not keep:
                return current
        callee = layer.call.callee.name
        block = env.blocks.get(callee)
        op = REGISTRY.get(callee)
        where = self.loc(env, layer.call)
        if block is None and op is None:
            hint = did_you_mean(callee, [*REGISTRY, *env.blocks])
            if callee in frame.tensors:
                hint = f"`{callee}` is a tensor; merge tensors with `[a, {callee}] -> add`"
            self.sink.emit("E200", f"unknown layer `{callee}`: not an op or a block in scope",
                           self.loc(env, layer.call.callee), hint=hint, notes=frame.trail)
            return [POISON]
        args = self.evaluate_args(layer.call, frame)
        if args is None:
            return [POISON]
        copies = 1
        if layer.repeat is not None:
            count = self.evaluate(layer.repeat, frame.values, env, frame.trail)
            if count is None:
                return [POISON]
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                self.sink.emit("E205", f"a repeat count is a non-negative integer; got {fmt_value(count)}",
                               self.loc(env, layer.repeat), notes=frame.trail)
                return [POISON]
            if len(current) != 1:
                self.sink.emit("E207", f"`{callee} x {count}` repeats a layer fed by {len(current)} tensors; each copy "
                               "feeds the next, so a repeated layer takes one input", where, notes=frame.trail)
                return [POISON]
            if count > self.limits.layers:
                self.too_large(f"`{callee} x {count:,}` repeats past the limit of {self.limits.layers:,} layers",
                               self.loc(env, layer.repeat), frame)
            copies = count
        base = layer.alias.name if layer.alias else self.auto_name(op.kind if op else callee, frame)
        first = base if layer.repeat is None else f"{base}.0"  # a repeat names its copies base.0, base.1, ...
        if layer.alias and self.taken(frame.prefix + first, self.loc(env, layer.alias), frame):
            return [POISON]
        for index in range(copies):
            name = base if layer.repeat is None else f"{base}.{index}"
            self.step(where, frame)
            if block is not None:
                current = self.expand_block(block, args, name, current, frame, where)
            else:
                assert op is not None
                current = self.add_op(op, callee, args, name, current, frame, where)
            if POISON in current:
                return current
        return current

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

    def auto_name(self, callee: str, frame: Frame) -> str:
        n = frame.counters.get(callee, 0)
        while True:
            n += 1
            name = f"{callee}{n}"
            qualified = frame.prefix + name
            if name not in frame.reserved and qualified not in self.graph and qualified not in self.instances:
                frame.counters[callee] = n
                return name

    def taken(self, qualified: str, where: Location, frame: Frame) -> bool:
        """Whether a layer or block instance already has this name (E202 when it does)."""
        other = self.graph.node(qualified).location if qualified in self.graph else self.instances.get(qualified)
        if other is not None:
            self.sink.emit("E202", f"layer name `{qualified}` is already used at {other}", where,
                           hint="names given with `as` must be unique in their block", notes=frame.trail)
            return True
        return False

    def evaluate_args(self, call: A.Call, frame: Frame) -> list[tuple[A.Arg, Value]] | None:
        values = []
        for arg in call.args:
            value = self.evaluate(arg.value, frame.values, frame.env, frame.trail)
            if value is None:
                return None
            values.append((arg, value))
        return values

    def add_op(self, op: Op, callee: str, args: list[tuple[A.Arg, Value]], name: str, current: list[str],
               frame: Frame, where: Location) -> list[str]:
        if not self.arity_ok(callee, op.min_inputs, op.max_inputs, len(current), where, frame):
            return [POISON]
        fields = list(op.Params.model_fields)
        required = {k for k, f in op.Params.model_fields.items() if f.is_required()}
        bound = self.bind(callee, op.positional, fields, required, args, frame, where)
        if bound is None:
            return [POISON]
        params = self.validate(op, callee, bound, frame)
        if params is None:
            return [POISON]
        self.layers += 1
        if self.layers > self.limits.layers:
            self.too_large(f"the network expands to more than {self.limits.layers:,} layers", where, frame)
        qualified = frame.prefix + name
        if self.taken(qualified, where, frame):  # e.g. a repeat's copies meeting another repeat's, `as` both
            return [POISON]
        self.graph.add(Node(name=qualified, op=callee, params=params, inputs=tuple(current), location=where,
                            block_path=frame.block_path, block_kinds=frame.block_stack, trail=frame.trail))
        return [qualified]

    def arity_ok(self, callee: str, low: int, high: int | None, got: int, where: Location, frame: Frame) -> bool:
        if low <= got and (high is None or got <= high):
            return True
        wanted = f"{low}" if high == low else f"{low} or more" if high is None else f"{low} to {high}"
        hint = ("merge several tensors with `[a, b] -> add` or `-> concat` first" if got > 1
                else "feed several tensors with `[a, b] -> " + callee + "`")
        self.sink.emit("E207", f"`{callee}` takes {wanted} input(s); got {got}", where, hint=hint, notes=frame.trail)
        return False

    def bind(self, callee: str, positional: Sequence[str], names: Sequence[str], required: set[str],
             args: list[tuple[A.Arg, Value]], frame: Frame, call: Location
             ) -> dict[str, tuple[A.Arg, Value]] | None:
        """Match call arguments to parameter names, reporting every problem at its argument."""
        env = frame.env
        bound: dict[str, tuple[A.Arg, Value]] = {}
        ok = True
        signature = f"{callee}({', '.join(positional)}{', ...' if len(names) > len(positional) else ''})"
        index = 0
        for arg, value in args:
            where = self.loc(env, arg)
            if arg.name is None:
                if index >= len(positional):
                    self.sink.emit("E206", f"`{callee}` takes {len(positional)} positional argument(s); got more",
                                   where, hint=f"the rest are keywords: {signature}", notes=frame.trail)
                    ok = False
                    continue
                key = positional[index]
                index += 1
            else:
                key = arg.name.name
                if key not in names and self.sink.full_at(where):
                    ok = False
                    continue
                if key not in names:
                    hint = did_you_mean(key, list(names)) or f"`{callee}` accepts: {', '.join(names) or 'no arguments'}"
                    self.sink.emit("E203", f"`{callee}` has no argument `{key}`", self.loc(env, arg.name), hint=hint,
                                   notes=frame.trail)
                    ok = False
                    continue
            if key in bound:
                self.sink.emit("E206", f"argument `{key}` of `{callee}` is given twice", where, notes=frame.trail)
                ok = False
                continue
            bound[key] = (arg, value)
        missing = [k for k in names if k in required and k not in bound]
        if missing:
            listed = ", ".join(f"`{k}`" for k in missing)
            self.sink.emit("E204", f"`{callee}` is missing required argument(s) {listed}", call,
                           hint=f"call it as {signature}", notes=frame.trail)
            ok = False
        return bound if ok else None

    def validate(self, op: Op, callee: str, bound: dict[str, tuple[A.Arg, Value]], frame: Frame) -> Any:
        try:
            return op.Params.model_validate({k: _plain(v) for k, (_, v) in bound.items()})
        except ValidationError as exc:
            reported: set[str] = set()
            for error in exc.errors():
                key = str(error["loc"][0]) if error["loc"] else ""
                if key in reported or key not in bound:
                    continue
                reported.add(key)
                arg, value = bound[key]
                where = self.loc(frame.env, arg.value)
                description = op.descriptions.get(key)
                if isinstance(value, Symbol) and value not in frame.values:
                    hint = did_you_mean(value, [*frame.values, *_keywords(description)])
                    self.sink.emit("E201", f"unknown name `{value}` for argument `{key}` of `{callee}`", where,
                                   hint=hint or (f"`{key}` must be {description}" if description else None),
                                   notes=frame.trail)
                    continue
                rule = f"must be {description}" if description else error["msg"].lower()
                self.sink.emit("E205", f"argument `{key}` of `{callee}` {rule}; got {fmt_value(value)}", where,
                               notes=frame.trail)
            return None

    # ---- blocks ---------------------------------------------------------------------------------
    def expand_block(self, info: BlockInfo, args: list[tuple[A.Arg, Value]], name: str, current: list[str],
                     frame: Frame, where: Location) -> list[str]:
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
        if not self.arity_ok(callee, len(input_names), len(input_names), len(current), where, frame):
            return [POISON]
        params = [p.name.name for p in block.params]
        required = {p.name.name for p in block.params if p.default is None}
        bound = self.bind(callee, params, params, required, args, frame, where)
        if bound is None:
            return [POISON]
        values: dict[str, Value] = {}
        for param in block.params:
            if param.name.name in bound:
                values[param.name.name] = bound[param.name.name][1]
            else:
                assert param.default is not None
                default = self.evaluate(param.default, ChainMap(values, info.env.consts), info.env, frame.trail)
                if default is None:
                    return [POISON]
                values[param.name.name] = default
        qualified = frame.prefix + name
        if self.taken(qualified, where, frame):
            return [POISON]
        self.instances[qualified] = where
        inner = Frame(
            env=info.env,
            values=ChainMap(values, info.env.consts),
            tensors=dict(zip(input_names, current, strict=True)),
            tensor_defs={n: where for n in input_names},
            prefix=qualified + ".",
            trail=(*frame.trail, f"in block `{callee}` called as `{qualified}` at {where}"),
            block_stack=(*frame.block_stack, callee),
            block_path=(*frame.block_path, qualified),
            reserved=_aliases(block.body),
        )
        try:
            self.run_body(block.body, inner)
        except _Returned as result:
            return [result.tensor]
        self.sink.emit("E503", f"block `{callee}` ends without `return`", self.loc(info.env, block.name),
                       hint="end the block with `return <chain>`", notes=frame.trail)
        return [POISON]

    # ---- helpers --------------------------------------------------------------------------------
    def evaluate(self, expr: A.Node, scope: Any, env: ModuleEnv, trail: tuple[str, ...] = ()) -> Value | None:
        """The expression's value, or None after reporting why not. An expression that uses a constant whose
        own definition failed is None without a report: that error was reported once, where it is."""
        try:
            value = evaluate(expr, scope)
        except EvalError as exc:
            if not (self.failed and _mentions(expr, self.failed)):
                self.sink.emit(exc.code, exc.message, self.loc(env, exc.node), hint=exc.hint, notes=trail)
            return None
        if self.failed and _holds_symbol(value, self.failed):
            return None
        return value

    def duplicate(self, what: str, name: str, where: Location, first: Location) -> None:
        self.sink.emit("E202", f"{what} `{name}` is defined twice (first at {first})", where)

    @staticmethod
    def loc(env: ModuleEnv, node: A.Node) -> Location:
        return Location(env.path, node.line, node.col, node.end_line, node.end_col)


def _mentions(expr: A.Node, names: set[str]) -> bool:
    """Whether the expression refers to one of `names` (walked without recursion)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        match node:
            case A.NameRef():
                if node.name in names:
                    return True
            case A.BinOp():
                stack += [node.left, node.right]
            case A.UnaryOp():
                stack.append(node.operand)
            case A.Conditional():
                stack += [node.condition, node.then, node.otherwise]
            case A.TupleExpr():
                stack += list(node.items)
    return False


def _holds_symbol(value: Value, names: set[str]) -> bool:
    if isinstance(value, Symbol):
        return value in names
    return isinstance(value, tuple) and any(_holds_symbol(item, names) for item in value)


def _resolved(path: Path) -> Path:
    """`path` made absolute with symbolic links resolved; a loop or an unusable path resolves to itself
    (reading it then reports the problem)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return path.absolute()


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _plain(value: Value) -> Any:
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, Symbol):
        return str(value)
    return value


def _keywords(description: str | None) -> list[str]:
    """Keywords quoted in an argument description (`same`, `valid`, ...), for did-you-mean hints."""
    if not description:
        return []
    parts = description.split("`")
    return [parts[i] for i in range(1, len(parts), 2)]


def _walk(statements: Iterable[A.Node]) -> Iterable[A.Node]:
    for stmt in statements:
        yield stmt
        if isinstance(stmt, A.If):
            yield from _walk(stmt.then)
            yield from _walk(stmt.otherwise)


def _aliases(statements: Iterable[A.Node]) -> set[str]:
    names: set[str] = set()
    for stmt in _walk(statements):
        chain = getattr(stmt, "chain", None)
        if chain is not None:
            names.update(layer.alias.name for layer in chain.layers if layer.alias)
    return names


def _assignments(statements: Sequence[A.Node], path: str) -> dict[str, tuple[int, Location]]:
    """Tensor names each statement of a body assigns, for 'used before defined' diagnostics."""
    result: dict[str, tuple[int, Location]] = {}
    for index, stmt in enumerate(statements):
        for inner in _walk([stmt]):
            if isinstance(inner, A.Assign | A.OutputAssign):
                target = inner.target if isinstance(inner, A.Assign) else inner.name
                if target.name not in result:
                    result[target.name] = (index, Location(path, target.line, target.col))
    return result
