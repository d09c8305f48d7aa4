"""Scopes and constants: what a file defines (its environment), the execution frame of one body, and
the evaluation of constant expressions with each failure reported once."""

from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass, field
from typing import Any

from ..diagnostics import Code, DiagnosticSink, Location, Option, UsageError
from ..syntax import ast as A
from .expr import EvalError, Symbol, TensorShape, Unknowable, Value, evaluate, fmt_value

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
    # An import of this file (or of its imports) failed: its blocks and constants are unknown, so names
    # that may have come from it are not reported as unknown (the failed import is the one error).
    incomplete: bool = False


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
    reserved: set[str] = field(default_factory=set)  # `as` names of this body: auto-names avoid them
    # The next number of a `numbered block` (shared with the unnamed instances it calls), or None.
    numbering: list[int] | None = None
    counters: dict[str, int] = field(default_factory=dict)
    # Tensors each statement of the running body assigns, and the statement running: a name used before
    # a later statement assigns it is reported as a use before definition.
    assigned: dict[str, tuple[int, Location]] = field(default_factory=dict)
    position: int = 0
    undecided: bool = False  # an `if` condition failed: whether the body returns is unknown

    def defined_later(self, name: str) -> Location | None:
        entry = self.assigned.get(name)
        return entry[1] if entry is not None and entry[0] > self.position else None

    @property
    def in_block(self) -> bool:
        return bool(self.block_stack)


def loc(env: ModuleEnv, node: A.Node) -> Location:
    """Where an AST node of `env`'s file is."""
    return Location(env.path, node.line, node.col, node.end_line, node.end_col)


def duplicate(sink: DiagnosticSink, what: str, name: str, where: Location, first: Location) -> None:
    sink.emit(Code.E202, f"{what} `{name}` is defined twice (first at {first})", where)


class Constants:
    """Evaluates expressions against a scope. A constant whose definition failed is remembered, so the
    expressions that use it fail quietly instead of repeating its error (or cascading into E205 "got a")."""

    def __init__(self, sink: DiagnosticSink):
        self.sink = sink
        self.failed: set[str] = set()  # constants whose definition failed (already reported)
        # Values given for the spec file's own top-level constants (`--set`, `constants=`), and that file.
        self.overrides: dict[str, Value] = {}
        self.root: str | None = None
        self.declared: dict[str, Value] = {}  # the spec file's top-level constants as written

    def evaluate(self, expr: A.Node, scope: Any, env: ModuleEnv, trail: tuple[str, ...] = (),
                 tensor_shape: TensorShape | None = None) -> Value | None:
        """The expression's value, or None after reporting why not. An expression that uses a constant whose
        own definition failed, or the shape of a tensor whose layer failed, is None without a report: that
        error was reported once, where it is. `tensor_shape` gives the shape functions their tensors."""
        try:
            value = evaluate(expr, scope, tensor_shape)
        except Unknowable:
            return None
        except EvalError as exc:
            if exc.code == Code.E201 and env.incomplete:
                return None  # perhaps a constant of the import that failed
            if exc.code is not None and not (self.failed and _mentions(expr, self.failed)):
                self.sink.emit(exc.code, exc.message, loc(env, exc.node), hint=exc.hint, notes=trail)
            return None
        if self.failed and _holds_symbol(value, self.failed):
            return None
        return value

    def define(self, name: str, expr: A.Node, scope: Any, env: ModuleEnv,
               tensor_shape: TensorShape | None = None) -> Value | None:
        """Evaluate a constant's definition; a failure is remembered under its name."""
        value = self.evaluate(expr, scope, env, tensor_shape=tensor_shape)
        if value is None:
            self.failed.add(name)
        return value

    def define_in_file(self, env: ModuleEnv, stmt: A.Const) -> None:
        """A top-level `const` of a file: part of what the file exports."""
        where = loc(env, stmt.name)
        if stmt.name.name in env.consts:
            duplicate(self.sink, "constant", stmt.name.name, where, env.const_origin[stmt.name.name])
            return
        value = self.define(stmt.name.name, stmt.value, env.consts, env)
        if value is not None and env.path == self.root:
            self.declared[stmt.name.name] = value
            if stmt.name.name in self.overrides:
                value = overridden(stmt.name.name, value, self.overrides[stmt.name.name], where)
        if value is not None:
            env.consts[stmt.name.name] = value
            env.const_origin[stmt.name.name] = where


def overridden(name: str, declared: Value, given: Value, where: Location) -> Value:
    """`given` in place of the constant `name` (declared at `where` as `declared`): a value of the same kind
    (an integer for a decimal is taken as one), else UsageError."""
    def kind(value: Value) -> str:
        return ("true or false" if isinstance(value, bool) else "an integer" if isinstance(value, int) else
                "a number" if isinstance(value, float) else "a string" if isinstance(value, str) else "a tuple")

    if isinstance(declared, float) and isinstance(given, int) and not isinstance(given, bool):
        return float(given)
    if kind(declared) != kind(given) or kind(declared) == "a tuple":
        raise UsageError(f"`{name}` is {kind(declared)} at {where} (`const {name} = {fmt_value(declared)}`); "
                         f"{fmt_value(given)} cannot "
                         "replace it" + (": only numbers and true/false can be set" if kind(declared) == "a tuple"
                                         else ""), option=Option.CONSTANTS)
    return given


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
            case A.CallExpr():
                stack += list(node.args)
    return False


def _holds_symbol(value: Value, names: set[str]) -> bool:
    if isinstance(value, Symbol):
        return value in names
    return isinstance(value, tuple) and any(_holds_symbol(item, names) for item in value)
