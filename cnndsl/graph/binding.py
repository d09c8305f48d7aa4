"""Argument binding: a call's arguments evaluated, matched to the op's or block's parameters
(positional, keyword, defaults) and validated against the op's schema, each problem reported at the
argument it concerns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from ..diagnostics import Code, DiagnosticSink, Location, did_you_mean
from ..ops import Op
from ..syntax import ast as A
from .expr import Symbol, TensorShape, Value, fmt_value
from .scope import Constants, Frame, loc

Bound = dict[str, tuple[A.Arg, Value]]  # parameter -> (the argument that gave it, its value)


class Binder:
    def __init__(self, sink: DiagnosticSink, constants: Constants):
        self.sink = sink
        self.constants = constants

    def evaluate_args(self, call: A.Call, frame: Frame, tensor_shape: TensorShape | None = None
                      ) -> list[tuple[A.Arg, Value]] | None:
        values = []
        for arg in call.args:
            value = self.constants.evaluate(arg.value, frame.values, frame.env, frame.trail, tensor_shape)
            if value is None:
                return None
            values.append((arg, value))
        return values

    def arity_ok(self, callee: str, low: int, high: int | None, got: int, where: Location, frame: Frame) -> bool:
        if low <= got and (high is None or got <= high):
            return True
        wanted = f"{low}" if high == low else f"{low} or more" if high is None else f"{low} to {high}"
        hint = ("merge several tensors with `[a, b] -> add` or `-> concat` first" if got > 1
                else "feed several tensors with `[a, b] -> " + callee + "`")
        self.sink.emit(Code.E207, f"`{callee}` takes {wanted} input(s); got {got}", where, hint=hint, notes=frame.trail)
        return False

    def bind(self, callee: str, positional: Sequence[str], names: Sequence[str], required: set[str],
             args: list[tuple[A.Arg, Value]], frame: Frame, call: Location) -> Bound | None:
        """Match call arguments to parameter names, reporting every problem at its argument."""
        env = frame.env
        bound: Bound = {}
        ok = True
        signature = f"{callee}({', '.join(positional)}{', ...' if len(names) > len(positional) else ''})"
        index = 0
        given = sum(arg.name is None for arg, _ in args)
        for arg, value in args:
            where = loc(env, arg)
            if arg.name is None:
                if index >= len(positional):
                    if index == len(positional):  # one error per call, at the first argument too many
                        self.sink.emit(Code.E206, f"`{callee}` takes {len(positional)} positional argument(s); got "
                                       f"{given}", where, hint=f"the rest are keywords: {signature}",
                                       notes=frame.trail)
                    index += 1
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
                    self.sink.emit(Code.E203, f"`{callee}` has no argument `{key}`", loc(env, arg.name), hint=hint,
                                   notes=frame.trail)
                    ok = False
                    continue
            if key in bound:
                self.sink.emit(Code.E206, f"argument `{key}` of `{callee}` is given twice", where, notes=frame.trail)
                ok = False
                continue
            bound[key] = (arg, value)
        missing = [k for k in names if k in required and k not in bound]
        if missing:
            listed = ", ".join(f"`{k}`" for k in missing)
            self.sink.emit(Code.E204, f"`{callee}` is missing required argument(s) {listed}", call,
                           hint=f"call it as {signature}", notes=frame.trail)
            ok = False
        return bound if ok else None

    def bind_op(self, op: Op, callee: str, args: list[tuple[A.Arg, Value]], frame: Frame, where: Location) -> Any:
        """The op's validated parameters for this call, or None after reporting what does not fit."""
        fields = op.Params.argument_names()
        required = {k for k, f in op.Params.model_fields.items() if f.is_required()}
        bound = self.bind(callee, op.positional, fields, required, args, frame, where)
        return None if bound is None else self.validate(op, callee, bound, frame)

    def validate(self, op: Op, callee: str, bound: Bound, frame: Frame) -> Any:
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
                where = loc(frame.env, arg.value)
                description = op.descriptions.get(key)
                if isinstance(value, Symbol) and value not in frame.values:
                    if frame.env.incomplete and not _keywords(description):
                        continue  # perhaps a constant of the import that failed, which is reported
                    hint = did_you_mean(value, [*frame.values, *_keywords(description)])
                    self.sink.emit(Code.E201, f"unknown name `{value}` for argument `{key}` of `{callee}`", where,
                                   hint=hint or (f"`{key}` must be {description}" if description else None),
                                   notes=frame.trail)
                    continue
                rule = f"must be {description}" if description else error["msg"].lower()
                self.sink.emit(Code.E205, f"argument `{key}` of `{callee}` {rule}; got {fmt_value(value)}", where,
                               notes=frame.trail)
            return None


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
