"""Ops lowered by their formula (`Op.compose`, ops/compose.py): the primitives in torch's functions, and
the module that evaluates a formula. Used for the ops torch.nn has no class for (softplus has one, but
the formula is the same function, F.softplus)."""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ...ops import Attrs, Op

Operand = torch.Tensor | float


class TorchPrimitives:
    """`Primitives` (ops/compose.py) with torch's functions; float operands broadcast as scalars."""

    def add(self, x: Operand, y: Operand) -> torch.Tensor:
        return cast(torch.Tensor, x + y)  # one operand is a tensor

    def subtract(self, x: Operand, y: Operand) -> torch.Tensor:
        return cast(torch.Tensor, x - y)

    def multiply(self, x: Operand, y: Operand) -> torch.Tensor:
        return cast(torch.Tensor, x * y)

    def divide(self, x: Operand, y: Operand) -> torch.Tensor:
        return cast(torch.Tensor, x / y)

    def maximum(self, x: torch.Tensor, y: Operand) -> torch.Tensor:
        return torch.clamp_min(x, y) if isinstance(y, float) else torch.maximum(x, y)

    def minimum(self, x: torch.Tensor, y: Operand) -> torch.Tensor:
        return torch.clamp_max(x, y) if isinstance(y, float) else torch.minimum(x, y)

    def clip(self, x: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.clamp(x, low, high)

    def exp(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)

    def tanh(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)

    def sigmoid(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)

    def softplus(self, x: torch.Tensor, beta: float, threshold: float) -> torch.Tensor:
        return F.softplus(x, beta, threshold)


TORCH = TorchPrimitives()


class Composed(nn.Module):
    """A layer computed by its op's formula. Prints as the op's class with its arguments (`Softplus(beta=2.0,
    threshold=20.0)`), as torch.nn's own activations do."""

    def __init__(self, op: Op, attrs: Attrs[Any]):
        super().__init__()
        self.op, self.attrs = op, attrs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.op.compose(TORCH, x, self.attrs)
        return result

    def _get_name(self) -> str:
        return type(self.op).__name__

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.attrs.p.model_dump().items())
