"""cnndsl: a small language for convolutional networks, checked before any tensor exists.

The names below are imported on first use, so `import cnndsl.runtime` (running a compiled artifact)
loads none of the compiler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Network, load
    from .diagnostics import Diagnostic, SpecError, UsageError

__all__ = ["Diagnostic", "Network", "SpecError", "UsageError", "load"]
__version__ = "0.1.0"

_LAZY = {"Network": "api", "load": "api", "Diagnostic": "diagnostics", "SpecError": "diagnostics",
         "UsageError": "diagnostics"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'cnndsl' has no attribute {name!r}")
