"""Loading a state_dict into a compiled module: every key, shape or dtype that does not fit is an E601
located at the layer it concerns, reported all at once."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...diagnostics import Code, Diagnostic, Location, SpecError, UsageError
from ...files import readable_file
from ...graph.model import Graph
from ...layout import fmt_shape

KeyMap = Callable[[str], str | None]  # a stored key -> the module's key, or None to leave the tensor out


def load_weights(module: nn.Module, graph: Graph, path: Path, key_map: KeyMap | None = None) -> None:
    """Load a state_dict saved with torch.save, its keys renamed by `key_map` first (a checkpoint of another
    layout: `weights_map`); every mismatch is an E601 at the layer it concerns."""
    readable_file(path, "weights file")  # a FIFO or a device would hang or never end
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise UsageError(f"weights file {path} cannot be read ({exc.strerror or type(exc).__name__})") from exc
    except Exception as exc:  # torch raises many types for a file that is not a state_dict
        raise SpecError([Diagnostic(Code.E601, f"{path} is not a PyTorch state_dict ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''})", None,
                                    "save one with torch.save(model.state_dict(), path)")]) from exc
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpecError([Diagnostic(Code.E601, f"{path} does not hold a state_dict (a dict of tensors)", None,
                                    "save one with torch.save(model.state_dict(), path)")])
    renaming: list[Diagnostic] = []
    if key_map is not None:
        state, renaming = renamed(state, key_map, path)
    expected = module.state_dict()
    problems = renaming + weight_mismatches(expected, state, graph, path)
    if problems:
        raise SpecError(problems)
    for dtype, count in converted_precisions(expected, state).items():
        warnings.warn(f"{count} tensor(s) of {path} are {dtype}; they are converted to float32", stacklevel=2)
    module.load_state_dict(state)


def renamed(state: dict[str, Any], key_map: KeyMap, path: Path) -> tuple[dict[str, Any], list[Diagnostic]]:
    """The state_dict with its keys mapped (those mapped to None left out); two keys mapped to one is E601."""
    result: dict[str, Any] = {}
    origin: dict[str, str] = {}
    problems = []
    for key, tensor in state.items():
        new = key_map(key)
        if new is None:
            continue
        if new in origin:
            problems.append(Diagnostic(Code.E601, f"`{origin[new]}` and `{key}` in {path} both map to `{new}`", None,
                                       "make the weights map's rules tell them apart"))
        origin[new] = key
        result[new] = tensor
    return result, problems


def weights_map(rules: Sequence[str]) -> KeyMap:
    """A key map from rules, applied in order to each key: `PATTERN=REPLACEMENT` substitutes a Python regular
    expression (`^module\\.=` strips DataParallel's prefix, `^features\\.(\\d+)=stage.\\1`), `-PATTERN`
    leaves out the tensors whose key matches (`-^fc\\.` keeps a checkpoint's classifier out).
    UsageError for a rule that is not one of these."""
    compiled: list[tuple[re.Pattern[str], str | None]] = []
    for rule in rules:
        drop = rule.startswith("-")
        pattern, sep, replacement = (rule[1:], "", "") if drop else rule.partition("=")
        if not drop and not sep:
            raise UsageError(f"weights map rule {rule!r} is not PATTERN=REPLACEMENT or -PATTERN")
        try:
            regex = re.compile(pattern)
            if not drop:
                regex.sub(replacement, "")  # a bad back-reference shows only when substituting
        except (re.error, IndexError) as exc:
            raise UsageError(f"weights map rule {rule!r}: {exc}") from exc
        compiled.append((regex, None if drop else replacement))

    def apply(key: str) -> str | None:
        for regex, replacement in compiled:
            if replacement is None:
                if regex.search(key):
                    return None
            else:
                key = regex.sub(replacement, key)
        return key
    return apply


def weight_mismatches(expected: dict[str, torch.Tensor], given: dict[str, Any], graph: Graph,
                      path: Path) -> list[Diagnostic]:
    def where(key: str) -> Location | None:
        layer = key.rsplit(".", 1)[0]
        return graph.node(layer).location if layer in graph else None

    problems = []
    for key, tensor in expected.items():
        if key not in given:
            problems.append(graph.diagnostic(Code.E601, f"{path} has no `{key}` ({_shape(tensor)})", where(key),
                                             "the weights were saved from a different network"))
        elif (problem := _unusable(given[key], tensor)) is not None:
            problems.append(graph.diagnostic(Code.E601, f"`{key}` in {path} {problem}", where(key),
                                             "save the weights as dense float32 CPU tensors"))
        elif tuple(given[key].shape) != tuple(tensor.shape):
            problems.append(graph.diagnostic(Code.E601, f"`{key}` in {path} is {_shape(given[key])}; the spec needs "
                                             f"{_shape(tensor)}", where(key)))
    unexpected = sorted(set(given) - set(expected))
    if unexpected:
        shown = ", ".join(f"`{k}`" for k in unexpected[:5]) + (" ..." if len(unexpected) > 5 else "")
        problems.append(Diagnostic(Code.E601, f"{path} has {len(unexpected)} tensors the spec does not: {shown}",
                                   None, "layer names come from the spec (`as name`)"))
    return problems


def _unusable(given: torch.Tensor, expected: torch.Tensor) -> str | None:
    """Why a stored tensor cannot stand for `expected`, or None. Floating weights of another precision are
    converted (a float16 checkpoint is common; `converted_precisions` warns), anything else is refused:
    an integer, bool or complex tensor where a weight belongs, sparse or meta storage, NaN or infinity."""
    if given.layout != torch.strided:
        return f"is a {str(given.layout).removeprefix('torch.')} tensor; weights are dense"
    if given.is_meta:
        return "is a meta tensor: it has a shape but no values"
    if expected.is_floating_point() != given.is_floating_point() or given.is_complex():
        return f"holds {str(given.dtype).removeprefix('torch.')} values; the spec needs " \
               f"{str(expected.dtype).removeprefix('torch.')}"
    if given.is_floating_point() and not bool(torch.isfinite(given).all()):
        return "has NaN or infinite values"
    return None


def converted_precisions(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> dict[str, int]:
    """Floating dtypes in `given` that loading converts to the module's, with how many tensors each."""
    counts: dict[str, int] = {}
    for key, tensor in expected.items():
        stored = given.get(key)
        if stored is not None and tensor.is_floating_point() and stored.dtype != tensor.dtype:
            name = str(stored.dtype).removeprefix("torch.")
            counts[name] = counts.get(name, 0) + 1
    return counts


def _shape(tensor: torch.Tensor) -> str:
    return fmt_shape(tuple(tensor.shape))
