"""cnndsl: a small language for convolutional networks, checked before any tensor exists."""

from .api import Network, load
from .diagnostics import Diagnostic, SpecError, UsageError

__all__ = ["Diagnostic", "Network", "SpecError", "UsageError", "load"]
__version__ = "0.1.0"
