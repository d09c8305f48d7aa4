"""The PyTorch backend: a checked network to a torch.nn.Module, a torch.export program or ONNX."""

from .build import build_module, load_weights

__all__ = ["build_module", "load_weights"]
