"""Element-wise formulas written once, lowered by every backend: the primitives an op composes from.

An op that is a formula over its one input (hardswish, mish, elu, softplus, ...) declares it as
`Op.compose(f, x, a)`, written against `Primitives`: a small set of element-wise functions that each
backend implements once (PyTorch with torch functions, TVM with Relax ops). A backend that has no
hand-written lowering for such an op evaluates its formula with its own primitives, so adding an
element-wise op touches its op file only (tinygrad's rule: composites from a small primitive set).

A formula is the op's meaning in training and at inference alike (dropout, which differs, is not one).
Operands are tensors of the backend's kind or Python floats (constants).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

T = TypeVar("T")


class Primitives(Protocol[T]):
    """The element-wise functions a formula may use; `x`, `y` are tensors or float constants."""

    def add(self, x: T | float, y: T | float) -> T: ...

    def subtract(self, x: T | float, y: T | float) -> T: ...

    def multiply(self, x: T | float, y: T | float) -> T: ...

    def divide(self, x: T | float, y: T | float) -> T: ...

    def maximum(self, x: T, y: T | float) -> T: ...

    def minimum(self, x: T, y: T | float) -> T: ...

    def clip(self, x: T, low: float, high: float) -> T: ...

    def exp(self, x: T) -> T: ...

    def tanh(self, x: T) -> T: ...

    def sigmoid(self, x: T) -> T: ...

    def relu(self, x: T) -> T: ...

    def softplus(self, x: T, beta: float, threshold: float) -> T:
        """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (PyTorch's definition)."""
        ...


PRIMITIVES = tuple(name for name in vars(Primitives) if not name.startswith("_"))  # what a backend implements
