"""The abstract syntax tree of a .cnn file: frozen, slotted dataclasses, each with its position.

The tree is exactly what the user wrote; nothing is evaluated here. Expressions stay symbolic until a
block is expanded (cnndsl/graph/elaborate.py), because block parameters give them values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

# The language's functions of tensor shapes (`channels(in)`), by name, with how each is called: part of the
# language (the editor grammar highlights them), evaluated by graph/expr.py.
SHAPE_FUNCTIONS = {"channels": "channels(t)", "size": "size(t, axis)", "shape": "shape(t)"}


# Every node is a frozen, slotted dataclass taking keyword arguments: the parser builds each one once
# (ast_builder.py) and nothing changes it afterwards; slots keep a 10,000-layer tree small.


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """A piece of the spec as written, with where it is (1-based lines and columns; end_col exclusive)."""

    line: int
    col: int
    end_line: int
    end_col: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Ident(Node):
    name: str


# ---- expressions --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class IntLit(Node):
    value: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FloatLit(Node):
    value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BoolLit(Node):
    value: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StrLit(Node):
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NameRef(Node):
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallExpr(Node):
    """A built-in function of tensors in an expression: `channels(in)`, `size(x, 1)`, `shape(x)`."""

    function: Ident
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TupleExpr(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class UnaryOp(Node):
    op: Literal["-", "not"]
    operand: Expr


@dataclass(frozen=True, slots=True, kw_only=True)
class BinOp(Node):
    op: Literal["+", "-", "*", "/", "//", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or"]
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True, kw_only=True)
class Conditional(Node):
    condition: Expr
    then: Expr
    otherwise: Expr


Expr: TypeAlias = (IntLit | FloatLit | BoolLit | StrLit | NameRef | CallExpr | TupleExpr | UnaryOp | BinOp
                   | Conditional)


# ---- chains -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Arg(Node):
    name: Ident | None  # None for a positional argument
    value: Expr


@dataclass(frozen=True, slots=True, kw_only=True)
class Call(Node):
    callee: Ident
    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer(Node):
    call: Call
    repeat: Expr | None = None
    repeat_index: Ident | None = None  # `x n for i`: the name of the copy's index in its arguments
    alias: Ident | None = None  # `as name`; `as _`: a block instance whose layers take the caller's names
    alias_index: Expr | None = None  # `x n for i as layer{i + 1}`: each copy named `layer<value>`
    guard: Expr | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Source(Node):
    names: tuple[Ident, ...]
    is_list: bool  # `[a, b] -> ...` feeds several tensors to the first layer


@dataclass(frozen=True, slots=True, kw_only=True)
class Chain(Node):
    source: Source
    layers: tuple[Layer, ...]


# ---- statements ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Import(Node):
    path: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Const(Node):
    name: Ident
    value: Expr


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkName(Node):
    name: Ident


@dataclass(frozen=True, slots=True, kw_only=True)
class InputDecl(Node):
    name: Ident
    shape: tuple[Expr, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockInputs(Node):
    names: tuple[Ident, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputAssign(Node):
    name: Ident
    chain: Chain
    training: bool = False  # `training output aux = ...`: computed in training mode only


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputNames(Node):
    names: tuple[Ident, ...]
    training: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Assign(Node):
    target: Ident
    chain: Chain


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainStmt(Node):
    chain: Chain


@dataclass(frozen=True, slots=True, kw_only=True)
class Return(Node):
    chain: Chain


@dataclass(frozen=True, slots=True, kw_only=True)
class If(Node):
    condition: Expr
    then: tuple[Statement, ...]
    otherwise: tuple[Statement, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Param(Node):
    name: Ident
    default: Expr | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockDef(Node):
    name: Ident
    params: tuple[Param, ...]
    body: tuple[Statement, ...]
    numbered: bool = False  # `numbered block`: its unnamed layers are named 0, 1, ... in order


Statement: TypeAlias = (Import | Const | NetworkName | InputDecl | BlockInputs | OutputAssign | OutputNames | Assign
                        | ChainStmt | Return | If | BlockDef)


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed .cnn file."""

    path: str
    statements: tuple[Statement, ...]
