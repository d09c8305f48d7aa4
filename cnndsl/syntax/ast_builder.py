"""Lark parse tree -> AST. Method names are the grammar's rule aliases (grammars/cnn.lark)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from lark import Token, Tree

from ..diagnostics import Code, Diagnostic, Location
from ..limits import DEFAULT_LIMITS, MAX_INTEGER, Limits
from . import ast as A

# Tokens the handlers read; punctuation and keywords only mark where a rule starts and ends.
VALUE_TOKENS = frozenset({"NAME", "PATH", "INT", "FLOAT", "STRING", "ARROW", "COMPARE", "PLUS", "MINUS", "MUL_OP",
                          "NUMBERED", "SHAPE_LITERAL"})


class Meta(NamedTuple):
    """Where a rule's text starts and ends (1-based; end_column exclusive), from its first and last token."""

    line: int
    column: int
    end_line: int
    end_column: int


NO_META = Meta(1, 1, 1, 1)


def _span(meta: Meta) -> dict[str, Any]:
    return {"line": meta.line, "col": meta.column, "end_line": meta.end_line, "end_col": meta.end_column}


def _tok_span(tok: Token) -> dict[str, Any]:
    return {"line": tok.line or 0, "col": tok.column or 0, "end_line": tok.end_line or 0,
            "end_col": tok.end_column or 0}


def ident(tok: Token) -> A.Ident:
    return A.Ident(name=str(tok), **_tok_span(tok))


def _names(items: list[Any]) -> tuple[A.Ident, ...]:
    return tuple(ident(t) for t in items if isinstance(t, Token) and t.type in ("NAME", "PATH"))


class AstBuilder:
    """Builds the AST bottom-up: each rule's children first, then the method named after the rule,
    called with the rule's span and its children (values and value tokens; punctuation dropped).

    A direct walk rather than lark.Transformer with propagate_positions: spans come from the tokens
    (the parser keeps them all), and long specs parse in half the time.
    """

    def __init__(self, path: str, limits: Limits = DEFAULT_LIMITS):
        self.path = path
        self.limits = limits
        self.errors: list[Diagnostic] = []  # numbers out of range (E103); the parser raises them
        self._handlers: dict[str, Callable[[Meta, list[Any]], Any]] = {}

    def transform(self, tree: Tree[Token]) -> Any:
        return self._walk(tree)[0]

    def _walk(self, tree: Tree[Token]) -> tuple[Any, Meta | None]:
        items: list[Any] = []
        first: Meta | None = None
        last: Meta | None = None
        for child in tree.children:
            if isinstance(child, Tree):
                value, span = self._walk(child)
                items.append(value)
            elif child is None:  # an absent optional part
                items.append(None)
                continue
            else:
                span = Meta(child.line or 1, child.column or 1, child.end_line or 1, child.end_column or 1)
                if child.type in VALUE_TOKENS:
                    items.append(child)
            if span is not None:
                first = first or span
                last = span
        meta = Meta(first.line, first.column, last.end_line, last.end_column) if first and last else None
        handler = self._handlers.get(tree.data)
        if handler is None:
            handler = self._handlers[tree.data] = getattr(self, str(tree.data))
        return handler(meta or NO_META, items), meta

    def atom(self, meta: Meta, items: list[Any]) -> Any:
        return items[0]  # a parenthesised expression

    # ---- module and statements ------------------------------------------------------------------
    def start(self, meta: Meta, items: list[Any]) -> A.Module:
        return A.Module(path=self.path, statements=tuple(items))

    def import_stmt(self, meta: Meta, items: list[Any]) -> A.Import:
        return A.Import(path=str(items[0])[1:-1], **_span(meta))

    def const_stmt(self, meta: Meta, items: list[Any]) -> A.Const:
        return A.Const(name=ident(items[0]), value=items[1], **_span(meta))

    def network_stmt(self, meta: Meta, items: list[Any]) -> A.NetworkName:
        return A.NetworkName(name=ident(items[0]), **_span(meta))

    def input_decl(self, meta: Meta, items: list[Any]) -> A.InputDecl:
        return A.InputDecl(name=ident(items[0]), shape=items[1], **_span(meta))

    def block_inputs(self, meta: Meta, items: list[Any]) -> A.BlockInputs:
        return A.BlockInputs(names=_names(items), **_span(meta))

    def output_assign(self, meta: Meta, items: list[Any]) -> A.OutputAssign:
        return A.OutputAssign(name=ident(items[0]), chain=items[1], **_span(meta))

    def output_names(self, meta: Meta, items: list[Any]) -> A.OutputNames:
        return A.OutputNames(names=_names(items), **_span(meta))

    def training_output_assign(self, meta: Meta, items: list[Any]) -> A.OutputAssign:
        return A.OutputAssign(name=ident(items[0]), chain=items[1], training=True, **_span(meta))

    def training_output_names(self, meta: Meta, items: list[Any]) -> A.OutputNames:
        return A.OutputNames(names=_names(items), training=True, **_span(meta))

    def assign_stmt(self, meta: Meta, items: list[Any]) -> A.Assign:
        return A.Assign(target=ident(items[0]), chain=items[1], **_span(meta))

    def chain_stmt(self, meta: Meta, items: list[Any]) -> A.ChainStmt:
        return A.ChainStmt(chain=items[0], **_span(meta))

    def return_stmt(self, meta: Meta, items: list[Any]) -> A.Return:
        return A.Return(chain=items[0], **_span(meta))

    def if_stmt(self, meta: Meta, items: list[Any]) -> A.If:
        condition, then, *rest = items
        otherwise: tuple[Any, ...] = ()
        if rest:
            otherwise = rest[0] if isinstance(rest[0], tuple) else (rest[0],)  # `else if` chains
        return A.If(condition=condition, then=then, otherwise=otherwise, **_span(meta))

    def body(self, meta: Meta, items: list[Any]) -> tuple[Any, ...]:
        return tuple(items)

    def block_def(self, meta: Meta, items: list[Any]) -> A.BlockDef:
        numbered = isinstance(items[0], Token) and items[0].type == "NUMBERED"
        name, *params, body = items[1:] if numbered else items
        return A.BlockDef(name=ident(name), params=tuple(p for p in params if p is not None), body=body,
                           numbered=numbered, **_span(meta))

    def param(self, meta: Meta, items: list[Any]) -> A.Param:
        default = items[1] if len(items) > 1 else None
        return A.Param(name=ident(items[0]), default=default, **_span(meta))

    def shape(self, meta: Meta, items: list[Any]) -> tuple[Any, ...]:
        return tuple(items)

    def shape_literal(self, meta: Meta, items: list[Any]) -> tuple[Any, ...]:
        tok: Token = items[0]
        dims = []
        col = tok.column or 0
        for part in str(tok).split("x"):
            line = tok.line or 0
            span: dict[str, Any] = {"line": line, "col": col, "end_line": line, "end_col": col + len(part)}
            dims.append(A.IntLit(value=self._integer(part, line, col), **span))
            col += len(part) + 1
        return tuple(dims)

    # ---- chains ---------------------------------------------------------------------------------
    def chain(self, meta: Meta, items: list[Any]) -> A.Chain:
        source, *rest = items
        layers = tuple(x for x in rest if isinstance(x, A.Layer))
        return A.Chain(source=source, layers=layers, **_span(meta))

    def tensor_ref(self, meta: Meta, items: list[Any]) -> A.Source:
        return A.Source(names=_names(items), is_list=False, **_span(meta))

    def tensor_list(self, meta: Meta, items: list[Any]) -> A.Source:
        return A.Source(names=_names(items), is_list=True, **_span(meta))

    def layer(self, meta: Meta, items: list[Any]) -> A.Layer:
        call, *mods = items
        fields: dict[str, Any] = {}
        for mod in mods:
            for kind, value in mod if isinstance(mod, list) else [mod]:
                fields[kind] = value
        return A.Layer(call=call, **fields, **_span(meta))

    def call(self, meta: Meta, items: list[Any]) -> A.Call:
        name, *args = items
        return A.Call(callee=ident(name), args=tuple(a for a in args if a is not None), **_span(meta))

    def repeat(self, meta: Meta, items: list[Any]) -> list[tuple[str, Any]]:
        count, *index = items
        return [("repeat", count), *(("repeat_index", ident(name)) for name in index)]

    def alias(self, meta: Meta, items: list[Any]) -> tuple[str, Any]:
        return ("alias", ident(items[0]))

    def alias_template(self, meta: Meta, items: list[Any]) -> list[tuple[str, Any]]:
        return [("alias", ident(items[0])), ("alias_index", items[1])]

    def guard(self, meta: Meta, items: list[Any]) -> tuple[str, Any]:
        return ("guard", items[0])

    def positional_arg(self, meta: Meta, items: list[Any]) -> A.Arg:
        return A.Arg(name=None, value=items[0], **_span(meta))

    def keyword_arg(self, meta: Meta, items: list[Any]) -> A.Arg:
        return A.Arg(name=ident(items[0]), value=items[1], **_span(meta))

    # ---- expressions ----------------------------------------------------------------------------
    def int_lit(self, meta: Meta, items: list[Any]) -> A.IntLit:
        return A.IntLit(value=self._integer(str(items[0]), meta.line, meta.column), **_span(meta))

    def float_lit(self, meta: Meta, items: list[Any]) -> A.FloatLit:
        value = float(items[0])
        if value == float("inf"):
            self._out_of_range(str(items[0]), meta.line, meta.column, "a 64-bit float (about 1.8e308)")
            value = 0.0
        return A.FloatLit(value=value, **_span(meta))

    def _integer(self, digits: str, line: int, col: int) -> int:
        """The literal's value; one past the limit is reported (E103) without converting the text, which
        Python refuses past 4,300 digits."""
        limit = MAX_INTEGER
        if len(digits) > len(str(limit)) or int(digits) > limit:
            self._out_of_range(digits, line, col, f"{limit:,} (2^63 - 1)")
            return 0
        return int(digits)

    def _out_of_range(self, text: str, line: int, col: int, limit: str) -> None:
        shown = text if len(text) <= 24 else f"{text[:10]}...{text[-6:]} ({len(text):,} characters)"
        self.errors.append(Diagnostic(Code.E103, f"the number {shown} is out of range: the largest is {limit}",
                                      Location(self.path, line, col, line, col + len(text)),
                                      hint="sizes, channels and counts are integers far below this"))

    def true_lit(self, meta: Meta, items: list[Any]) -> A.BoolLit:
        return A.BoolLit(value=True, **_span(meta))

    def false_lit(self, meta: Meta, items: list[Any]) -> A.BoolLit:
        return A.BoolLit(value=False, **_span(meta))

    def string_lit(self, meta: Meta, items: list[Any]) -> A.StrLit:
        return A.StrLit(value=str(items[0])[1:-1], **_span(meta))

    def name_ref(self, meta: Meta, items: list[Any]) -> A.NameRef:
        return A.NameRef(name=str(items[0]), **_span(meta))

    def call_expr(self, meta: Meta, items: list[Any]) -> A.CallExpr:
        name, *args = items
        return A.CallExpr(function=ident(name), args=tuple(a for a in args if a is not None),
                           **_span(meta))

    def tuple_lit(self, meta: Meta, items: list[Any]) -> A.TupleExpr:
        return A.TupleExpr(items=tuple(items), **_span(meta))

    def neg_op(self, meta: Meta, items: list[Any]) -> A.UnaryOp:
        return A.UnaryOp(op="-", operand=items[-1], **_span(meta))

    def not_op(self, meta: Meta, items: list[Any]) -> A.UnaryOp:
        return A.UnaryOp(op="not", operand=items[-1], **_span(meta))

    def _binary(self, meta: Meta, op: str, left: Any, right: Any) -> A.BinOp:
        return A.BinOp(op=op, left=left, right=right, **_span(meta))  # type: ignore[arg-type]

    def arith_op(self, meta: Meta, items: list[Any]) -> A.BinOp:
        left, op, right = items
        return self._binary(meta, str(op), left, right)

    compare_op = arith_op

    def cond_op(self, meta: Meta, items: list[Any]) -> A.Conditional:
        then, condition, otherwise = items
        return A.Conditional(condition=condition, then=then, otherwise=otherwise, **_span(meta))

    def and_op(self, meta: Meta, items: list[Any]) -> A.BinOp:
        return self._binary(meta, "and", items[0], items[1])

    def or_op(self, meta: Meta, items: list[Any]) -> A.BinOp:
        return self._binary(meta, "or", items[0], items[1])
