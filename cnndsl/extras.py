"""Optional features and the packages they need: a backend used without its extra installed is an
environment problem with a one-line fix, not a bug. `require` says so before any work starts, as a
ModuleNotFoundError (an ImportError) naming the missing module and the install command; the CLI prints
its message and exits 2."""

from __future__ import annotations

import importlib.util

# The extra of pyproject.toml that installs each importable module an optional feature needs.
EXTRA_OF = {"torch": "torch", "onnx": "onnx", "onnxscript": "onnx", "onnxruntime": "onnx", "tvm": "tvm",
            "tvm_ffi": "tvm", "numpy": "tvm", "xgboost": "tvm", "psutil": "tvm", "cloudpickle": "tvm",
            "tornado": "tvm", "pygls": "lsp", "lsprotocol": "lsp"}


class MissingExtra(ModuleNotFoundError):
    """A feature's package is not installed; the message says which extra installs it."""


def install_hint(module: str) -> str:
    extra = EXTRA_OF.get(module.split(".")[0])
    return f"pip install 'cnndsl[{extra}]'" if extra else f"pip install {module.split('.')[0]}"


def missing_message(feature: str, module: str) -> str:
    package = module.split(".")[0]
    return f"{feature} needs `{package}`, which is not installed here; install with: {install_hint(module)}"


def require(feature: str, *modules: str) -> None:
    """Raise MissingExtra when one of `modules` cannot be imported here (checked without importing it)."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a module without a spec
            found = False
        if not found:
            raise MissingExtra(missing_message(feature, module), name=module)
