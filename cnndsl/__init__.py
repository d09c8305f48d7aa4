"""cnndsl: a small language for convolutional networks, checked before any tensor exists.

The names below are imported on first use, so `import cnndsl.runtime` (running a compiled artifact)
loads none of the compiler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import runtime
    from .api import Network, load, loads, sizes
    from .diagnostics import Diagnostic, SpecError, UsageError
    from .extras import MissingExtra

__all__ = ["Diagnostic", "MissingExtra", "Network", "SpecError", "UsageError", "load", "loads", "runtime", "sizes"]
__version__ = "0.1.0"

_LAZY = {"Network": "api", "load": "api", "loads": "api", "sizes": "api", "Diagnostic": "diagnostics",
         "SpecError": "diagnostics", "UsageError": "diagnostics", "MissingExtra": "extras"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name == "runtime":
        return importlib.import_module(".runtime", __name__)
    raise AttributeError(f"module 'cnndsl' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The API, for tab completion (the names are imported on first use)."""
    return sorted({*(name for name in globals() if name.startswith("__")), *__all__})
