"""The PyTorch backend: a checked network to a torch.nn.Module, a torch.export program or ONNX."""

from .lower import build_module
from .weights import load_weights

__all__ = ["build_module", "load_weights"]
