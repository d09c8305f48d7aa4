"""Evaluating parameter expressions: integers, floats, booleans, tuples and bare keywords.

A bare name that is not bound to a constant or a block parameter evaluates to a ``Symbol``: the
keywords of op arguments (`same`, `nearest`, `depthwise`) are symbols. Using a symbol in arithmetic,
or where the op accepts no such keyword, is reported as an unknown name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Union

from ..limits import MAX_INTEGER
from ..syntax import ast as A

Value = Union[int, float, bool, str, "Symbol", tuple["Value", ...]]


class Symbol(str):
    """A bare, unbound name such as `same`."""


class EvalError(Exception):
    def __init__(self, code: str, message: str, node: A.Node, hint: str | None = None):
        self.code, self.message, self.node, self.hint = code, message, node, hint
        super().__init__(message)


def fmt_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "(" + ", ".join(fmt_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, Symbol):
        return str(value)
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def evaluate(expr: A.Node, scope: Mapping[str, Value]) -> Value:
    match expr:
        case A.IntLit() | A.FloatLit() | A.BoolLit() | A.StrLit():
            return expr.value
        case A.NameRef():
            return scope[expr.name] if expr.name in scope else Symbol(expr.name)
        case A.TupleExpr():
            return tuple(evaluate(item, scope) for item in expr.items)
        case A.UnaryOp(op="-"):
            return -_number(evaluate(expr.operand, scope), expr.operand, "-", scope)
        case A.UnaryOp(op="not"):
            return not _boolean(evaluate(expr.operand, scope), expr.operand, "not")
        case A.Conditional():
            chosen = _boolean(evaluate(expr.condition, scope), expr.condition, "if")
            return evaluate(expr.then if chosen else expr.otherwise, scope)
        case A.BinOp(op="and" | "or"):
            left = _boolean(evaluate(expr.left, scope), expr.left, expr.op)
            if (expr.op == "and" and not left) or (expr.op == "or" and left):
                return left
            return _boolean(evaluate(expr.right, scope), expr.right, expr.op)
        case A.BinOp(op="==" | "!="):
            lhs, rhs = evaluate(expr.left, scope), evaluate(expr.right, scope)
            for side, node in ((lhs, expr.left), (rhs, expr.right)):
                _not_unknown(side, node, scope)
            return (lhs == rhs) == (expr.op == "==")
        case A.BinOp():
            a = _number(evaluate(expr.left, scope), expr.left, expr.op, scope)
            b = _number(evaluate(expr.right, scope), expr.right, expr.op, scope)
            return _in_range(_arithmetic(expr, a, b), expr)
    raise AssertionError(f"unknown expression {expr!r}")


def _in_range(value: Value, expr: A.BinOp) -> Value:
    """Every computed number stays a 64-bit integer or a finite float: a product of large constants
    would otherwise grow without bound (and 1e308 * 10 becomes inf)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) > MAX_INTEGER:
        raise EvalError("E208", f"`{_text(expr)}` is out of range: the result has {len(str(abs(value)))} digits; "
                        f"the largest integer is {MAX_INTEGER:,} (2^63 - 1)", expr)
    if isinstance(value, float) and not math.isfinite(value):
        raise EvalError("E208", f"`{_text(expr)}` is out of range: the result is not a finite number", expr)
    return value


def _arithmetic(expr: A.BinOp, a: int | float, b: int | float) -> Value:
    op = expr.op
    if op in ("<", "<=", ">", ">="):
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op in ("/", "//", "%") and b == 0:
        raise EvalError("E208", f"division by zero in `{_text(expr)}`", expr)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b  # both within 2^63: the product has at most 126 bits before the range check
    if op == "//":
        return a // b
    if op == "%":
        return a % b
    # `/` is exact on integers: a remainder in a channel count is a mistake, not something to floor.
    if isinstance(a, int) and isinstance(b, int):
        if a % b:
            raise EvalError("E208", f"{a} / {b} is not an integer (remainder {a % b})", expr,
                            hint="use `//` to round down, or choose values that divide exactly")
        return a // b
    return a / b


def _number(value: Value, node: A.Node, op: str, scope: Mapping[str, Value]) -> int | float:
    _not_unknown(value, node, scope)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvalError("E208", f"`{op}` needs numbers; got {fmt_value(value)}", node)
    return value


def _boolean(value: Value, node: A.Node, op: str) -> bool:
    if not isinstance(value, bool):
        raise EvalError("E208", f"`{op}` needs `true` or `false`; got {fmt_value(value)}", node,
                        hint="compare explicitly, e.g. `stride != 1`")
    return value


def _not_unknown(value: Value, node: A.Node, scope: Mapping[str, Value]) -> None:
    if isinstance(value, Symbol):
        from ..diagnostics import did_you_mean

        raise EvalError("E201", f"unknown name `{value}`", node, hint=did_you_mean(value, list(scope)))


def _text(expr: A.BinOp) -> str:
    def show(e: A.Node) -> str:
        match e:
            case A.IntLit() | A.FloatLit():
                return str(e.value)
            case A.NameRef():
                return e.name
            case A.BinOp():
                return f"({show(e.left)} {e.op} {show(e.right)})"
        return "..."

    return f"{show(expr.left)} {expr.op} {show(expr.right)}"
