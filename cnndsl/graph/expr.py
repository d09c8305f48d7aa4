"""Evaluating parameter expressions: integers, floats, booleans, tuples, bare keywords, and the shape
functions of tensors.

A bare name that is not bound to a constant or a block parameter evaluates to a ``Symbol``: the
keywords of op arguments (`same`, `nearest`, `depthwise`) are symbols. Using a symbol in arithmetic,
or where the op accepts no such keyword, is reported as an unknown name.

`channels(t)`, `size(t, axis)` and `shape(t)` read the per-sample shape of tensor `t` (axis 0 is the
channels, as for `concat` and `softmax`), so that a block can ask its input instead of being told.
The elaborator passes the shapes in (`tensor_shape`): they are known as soon as the layers before
the expression are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Union

from ..diagnostics import Code
from ..layout import fmt_shape
from ..limits import MAX_INTEGER
from ..syntax import ast as A

Value = Union[int, float, bool, str, "Symbol", tuple["Value", ...]]


class Symbol(str):
    """A bare, unbound name such as `same`."""


class EvalError(Exception):
    def __init__(self, code: Code | None, message: str, node: A.Node, hint: str | None = None):
        self.code, self.message, self.node, self.hint = code, message, node, hint
        super().__init__(message)


class Unknowable(EvalError):
    """The value depends on something whose error was already reported (a tensor whose layer failed):
    the expression fails without a diagnostic of its own."""

    def __init__(self, node: A.Node):
        super().__init__(None, "depends on an error reported elsewhere", node)


# A tensor name and the axis read (None: the whole shape) -> its per-sample shape (or EvalError). The axis
# lets the elaborator record what the spec's structure depends on (Graph.shape_reads).
TensorShape = Callable[[A.NameRef, int | None], tuple[int, ...]]
SHAPE_FUNCTIONS = A.SHAPE_FUNCTIONS


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


def evaluate(expr: A.Node, scope: Mapping[str, Value], tensor_shape: TensorShape | None = None) -> Value:
    def value(e: A.Node) -> Value:
        match e:
            case A.IntLit() | A.FloatLit() | A.BoolLit() | A.StrLit():
                return e.value
            case A.NameRef():
                return scope[e.name] if e.name in scope else Symbol(e.name)
            case A.CallExpr():
                return _shape_function(e, value, tensor_shape, scope)
            case A.TupleExpr():
                return tuple(value(item) for item in e.items)
            case A.UnaryOp(op="-"):
                return -_number(value(e.operand), e.operand, "-", scope)
            case A.UnaryOp(op="not"):
                return not _boolean(value(e.operand), e.operand, "not")
            case A.Conditional():
                chosen = _boolean(value(e.condition), e.condition, "if")
                return value(e.then if chosen else e.otherwise)
            case A.BinOp(op="and" | "or"):
                left = _boolean(value(e.left), e.left, e.op)
                if (e.op == "and" and not left) or (e.op == "or" and left):
                    return left
                return _boolean(value(e.right), e.right, e.op)
            case A.BinOp(op="==" | "!="):
                lhs, rhs = value(e.left), value(e.right)
                for side, node in ((lhs, e.left), (rhs, e.right)):
                    _not_unknown(side, node, scope)
                return (lhs == rhs) == (e.op == "==")
            case A.BinOp():
                a = _number(value(e.left), e.left, e.op, scope)
                b = _number(value(e.right), e.right, e.op, scope)
                return _in_range(_arithmetic(e, a, b), e)
        raise AssertionError(f"unknown expression {e!r}")

    return value(expr)


def _shape_function(call: A.CallExpr, value: Callable[[A.Node], Value], tensor_shape: TensorShape | None,
                    scope: Mapping[str, Value]) -> Value:
    """`channels(t)`, `size(t, axis)`, `shape(t)`: the per-sample shape of tensor `t`, read, not computed."""
    from ..diagnostics import did_you_mean

    name = call.function.name
    if name not in SHAPE_FUNCTIONS:
        raise EvalError(Code.E201, f"unknown function `{name}`", call.function,
                        hint=did_you_mean(name, list(SHAPE_FUNCTIONS)) or
                        f"the functions are {', '.join(SHAPE_FUNCTIONS.values())}")
    arity = 2 if name == "size" else 1
    if len(call.args) != arity or not isinstance(call.args[0], A.NameRef):
        raise EvalError(Code.E208, f"`{name}` takes {'a tensor and an axis' if arity == 2 else 'a tensor'}: "
                        f"`{SHAPE_FUNCTIONS[name]}`", call)
    if tensor_shape is None:
        raise EvalError(Code.E208, f"`{name}(...)` reads a tensor's shape, and no tensor is in scope here",
                        call, hint="a file's constants are evaluated before its network: use it in a layer's "
                                   "arguments, a block, or a `const` inside one")
    if name == "channels":
        return tensor_shape(call.args[0], 0)[0]
    if name == "shape":
        return tensor_shape(call.args[0], None)
    axis = value(call.args[1])
    if isinstance(axis, bool) or not isinstance(axis, int):
        _not_unknown(axis, call.args[1], scope)
        raise EvalError(Code.E208, f"the axis of `size` is an integer; got {fmt_value(axis)}", call.args[1])
    shape = tensor_shape(call.args[0], axis)
    if not -len(shape) <= axis < len(shape):
        raise EvalError(Code.E208, f"axis {axis} is out of range for a tensor of shape {fmt_shape(shape)}",
                        call.args[1], hint=f"axes count per sample, from 0 (channels) to {len(shape) - 1}")
    return shape[axis]


def _in_range(value: Value, expr: A.BinOp) -> Value:
    """Every computed number stays a 64-bit integer or a finite float: a product of large constants
    would otherwise grow without bound (and 1e308 * 10 becomes inf)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) > MAX_INTEGER:
        raise EvalError(Code.E208, f"`{_text(expr)}` is out of range: the result has {len(str(abs(value)))} digits; "
                        f"the largest integer is {MAX_INTEGER:,} (2^63 - 1)", expr)
    if isinstance(value, float) and not math.isfinite(value):
        raise EvalError(Code.E208, f"`{_text(expr)}` is out of range: the result is not a finite number", expr)
    return value


def _arithmetic(expr: A.BinOp, a: int | float, b: int | float) -> Value:
    op = expr.op
    if op in ("<", "<=", ">", ">="):
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op in ("/", "//", "%") and b == 0:
        raise EvalError(Code.E208, f"division by zero in `{_text(expr)}`", expr)
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
            raise EvalError(Code.E208, f"{a} / {b} is not an integer (remainder {a % b})", expr,
                            hint="use `//` to round down, or choose values that divide exactly")
        return a // b
    return a / b


def _number(value: Value, node: A.Node, op: str, scope: Mapping[str, Value]) -> int | float:
    _not_unknown(value, node, scope)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvalError(Code.E208, f"`{op}` needs numbers; got {fmt_value(value)}", node)
    return value


def _boolean(value: Value, node: A.Node, op: str) -> bool:
    if not isinstance(value, bool):
        raise EvalError(Code.E208, f"`{op}` needs `true` or `false`; got {fmt_value(value)}", node,
                        hint="compare explicitly, e.g. `stride != 1`")
    return value


def _not_unknown(value: Value, node: A.Node, scope: Mapping[str, Value]) -> None:
    if isinstance(value, Symbol):
        from ..diagnostics import did_you_mean

        raise EvalError(Code.E201, f"unknown name `{value}`", node, hint=did_you_mean(value, list(scope)))


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
