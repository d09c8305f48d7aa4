"""The abstract syntax tree of a .cnn file: strict, frozen pydantic models, each with its position.

The tree is exactly what the user wrote; nothing is evaluated here. Expressions stay symbolic until a
block is expanded (cnndsl/graph/elaborate.py), because block parameters give them values.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

# The language's functions of tensor shapes (`channels(in)`), by name, with how each is called: part of the
# language (the editor grammar highlights them), evaluated by graph/expr.py.
SHAPE_FUNCTIONS = {"channels": "channels(t)", "size": "size(t, axis)", "shape": "shape(t)"}


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    line: int
    col: int
    end_line: int
    end_col: int


class Ident(Node):
    name: str


# ---- expressions --------------------------------------------------------------------------------
class IntLit(Node):
    kind: Literal["int"] = "int"
    value: int


class FloatLit(Node):
    kind: Literal["float"] = "float"
    value: float


class BoolLit(Node):
    kind: Literal["bool"] = "bool"
    value: bool


class StrLit(Node):
    kind: Literal["str"] = "str"
    value: str


class NameRef(Node):
    kind: Literal["name"] = "name"
    name: str


class CallExpr(Node):
    """A built-in function of tensors in an expression: `channels(in)`, `size(x, 1)`, `shape(x)`."""

    kind: Literal["call"] = "call"
    function: Ident
    args: tuple[Expr, ...]


class TupleExpr(Node):
    kind: Literal["tuple"] = "tuple"
    items: tuple[Expr, ...]


class UnaryOp(Node):
    kind: Literal["unary"] = "unary"
    op: Literal["-", "not"]
    operand: Expr


class BinOp(Node):
    kind: Literal["binary"] = "binary"
    op: Literal["+", "-", "*", "/", "//", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or"]
    left: Expr
    right: Expr


class Conditional(Node):
    kind: Literal["conditional"] = "conditional"
    condition: Expr
    then: Expr
    otherwise: Expr


Expr = Annotated[
    IntLit | FloatLit | BoolLit | StrLit | NameRef | CallExpr | TupleExpr | UnaryOp | BinOp | Conditional,
    Field(discriminator="kind"),
]


# ---- chains -------------------------------------------------------------------------------------
class Arg(Node):
    name: Ident | None  # None for a positional argument
    value: Expr


class Call(Node):
    callee: Ident
    args: tuple[Arg, ...]


class Layer(Node):
    call: Call
    repeat: Expr | None = None
    repeat_index: Ident | None = None  # `x n for i`: the name of the copy's index in its arguments
    alias: Ident | None = None  # `as name`; `as _`: a block instance whose layers take the caller's names
    alias_index: Expr | None = None  # `x n for i as layer{i + 1}`: each copy named `layer<value>`
    guard: Expr | None = None


class Source(Node):
    names: tuple[Ident, ...]
    is_list: bool  # `[a, b] -> ...` feeds several tensors to the first layer


class Chain(Node):
    source: Source
    layers: tuple[Layer, ...]


# ---- statements ---------------------------------------------------------------------------------
class Import(Node):
    kind: Literal["import"] = "import"
    path: str


class Const(Node):
    kind: Literal["const"] = "const"
    name: Ident
    value: Expr


class NetworkName(Node):
    kind: Literal["network"] = "network"
    name: Ident


class InputDecl(Node):
    kind: Literal["input"] = "input"
    name: Ident
    shape: tuple[Expr, ...]


class BlockInputs(Node):
    kind: Literal["block_inputs"] = "block_inputs"
    names: tuple[Ident, ...]


class OutputAssign(Node):
    kind: Literal["output_assign"] = "output_assign"
    name: Ident
    chain: Chain
    training: bool = False  # `training output aux = ...`: computed in training mode only


class OutputNames(Node):
    kind: Literal["output_names"] = "output_names"
    names: tuple[Ident, ...]
    training: bool = False


class Assign(Node):
    kind: Literal["assign"] = "assign"
    target: Ident
    chain: Chain


class ChainStmt(Node):
    kind: Literal["chain"] = "chain"
    chain: Chain


class Return(Node):
    kind: Literal["return"] = "return"
    chain: Chain


class If(Node):
    kind: Literal["if"] = "if"
    condition: Expr
    then: tuple[Statement, ...]
    otherwise: tuple[Statement, ...]


class Param(Node):
    name: Ident
    default: Expr | None


class BlockDef(Node):
    kind: Literal["block"] = "block"
    name: Ident
    params: tuple[Param, ...]
    body: tuple[Statement, ...]
    numbered: bool = False  # `numbered block`: its unnamed layers are named 0, 1, ... in order


Statement = Annotated[
    Import | Const | NetworkName | InputDecl | BlockInputs | OutputAssign | OutputNames | Assign
    | ChainStmt | Return | If | BlockDef,
    Field(discriminator="kind"),
]


class Module(BaseModel):
    """One parsed .cnn file."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    path: str
    statements: tuple[Statement, ...]


for _model in (CallExpr, TupleExpr, UnaryOp, BinOp, Conditional, Arg, Call, Layer, If, Param, BlockDef, Const,
               InputDecl, Module):
    _model.model_rebuild()


_DEFAULTS: dict[type[BaseModel], dict[str, object]] = {}
ModelT = TypeVar("ModelT", bound=BaseModel)


def construct(model: type[ModelT], **fields: object) -> ModelT:
    """`model.model_construct(**fields)` without its per-field alias and default resolution: the parser
    builds every node of the tree this way, and pydantic's generic path took half of parsing a large
    spec. Like model_construct, it trusts its caller: the AST builder passes well-typed fields."""
    defaults = _DEFAULTS.get(model)
    if defaults is None:
        defaults = _DEFAULTS[model] = {name: info.default for name, info in model.model_fields.items()
                                       if not info.is_required()}
    node = model.__new__(model)
    object.__setattr__(node, "__dict__", {**defaults, **fields})
    object.__setattr__(node, "__pydantic_fields_set__", set(fields))
    object.__setattr__(node, "__pydantic_extra__", None)
    object.__setattr__(node, "__pydantic_private__", None)
    return node
