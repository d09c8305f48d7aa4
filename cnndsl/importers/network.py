"""What every importer produces: a network as calls of cnndsl ops, each placed in the module hierarchy it
came from. The writer (writer.py) turns it into a readable .cnn spec; the importers (pytorch.py,
onnx.py, caffe.py, keras.py) only translate their format's layers into calls.

A call's place is its scope: the path of module attribute names that contains it (`("layer1", "0")`)
with each module's class (`("Sequential", "BasicBlock")`), and its own name in the innermost one
(`"conv1"`). The written spec names its layers by that path (`layer1.0.conv1`), so a PyTorch state_dict
of the source loads into the compiled module with its own keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..diagnostics import Code, Diagnostic, Location
from ..ops import lookup

Value = Any  # an argument: int, float, bool, a word (str) or a tuple of them


@dataclass(frozen=True)
class Call:
    """One op of the imported network, reading `inputs` and writing `output` (tensor ids)."""

    op: str  # a cnndsl op (the registry's name)
    args: tuple[tuple[str, Value], ...]  # (argument name, value), in the op's order, defaults left out
    inputs: tuple[str, ...]
    output: str
    scope: tuple[str, ...] = ()  # module attribute names, outermost first
    classes: tuple[str, ...] = ()  # the class of each scope module
    name: str | None = None  # its own name in the innermost scope; None: named by cnndsl's counter
    origin: str = ""  # where it came from, for messages ("layer1.0.conv1 (Conv2d)", "ONNX node Conv_12")
    positional: int = 1  # how many leading arguments are written without their names
    # the source's tensors of this layer by the op's tensor names (`weight`, `running_mean`), where the
    # importer has them as arrays (ONNX initializers): what verification loads into the compiled spec
    weights: tuple[tuple[str, Any], ...] = ()

    @property
    def path(self) -> str:
        return ".".join((*self.scope, self.name)) if self.name is not None else ".".join(self.scope)

    @property
    def path_as_written(self) -> str:
        """The layer's qualified name in the written spec (and the compiled module's state_dict)."""
        return ".".join(layer_name(part) for part in (*self.scope, self.name or ""))


def op_call(op: str, inputs: tuple[str, ...], output: str, scope: tuple[str, ...] = (), classes: tuple[str, ...] = (),
            name: str | None = None, origin: str = "", weights: tuple[tuple[str, Any], ...] = (),
            **args: Value) -> Call:
    """A call of `op` with its arguments in the op's order, those equal to their defaults left out (a
    spec reads like a hand-written one), the op's positional ones written without their names."""
    found = lookup(op)
    if found is None:
        raise KeyError(f"no op {op!r}")
    fields = found.Params.model_fields
    unknown = set(args) - set(fields)
    if unknown:
        raise KeyError(f"{op} takes no {sorted(unknown)}")
    kept = tuple((key, args[key]) for key in found.Params.argument_names()
                 if key in args and (fields[key].is_required() or args[key] != fields[key].default))
    positional = 0  # a leading run of the op's positional arguments, none left out before it
    while positional < min(len(kept), len(found.positional)) and kept[positional][0] == found.positional[positional]:
        positional += 1
    return Call(op, kept, inputs, output, scope, classes, name, origin, positional, weights)


@dataclass(frozen=True)
class Input:
    tensor: str  # the id calls read it by
    name: str  # the spec's input name
    shape: tuple[int, ...]  # per sample, channels first


@dataclass
class ImportedNetwork:
    name: str
    source: str  # what was imported, for the spec's header ("torchvision.models:resnet18")
    kind: str  # the format ("PyTorch", "ONNX", "Caffe", "Keras")
    inputs: list[Input]
    calls: list[Call]
    outputs: list[tuple[str, str]]  # (output name, tensor id)
    notes: list[str] = field(default_factory=list)  # what was not carried over, and why
    source_params: int | None = None  # the source's own parameter count, where it has one

    def producer(self) -> dict[str, Call]:
        return {call.output: call for call in self.calls}


_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*\Z")


def layer_name(name: str) -> str:
    """A module's attribute name as a spec's layer name: as it is where the language allows it (names and
    numbers: after `as` even the language's keywords are names, `as block`), else with each other
    character made `_` (RegNet's `block1-0` -> `block1_0`)."""
    if name.isdigit() or (_NAME.match(name) and name != "_"):
        return name
    text = re.sub(r"\W", "_", name)
    return text if _NAME.match(text) and text != "_" else f"_{text}"


def renamed_key(key: str) -> str:
    """A state_dict key of the source as the imported spec names it (each module name through layer_name)."""
    *modules, tensor = key.split(".")
    return ".".join([*(layer_name(m) for m in modules), tensor])


LAYOUT_HINT = ("a spec keeps tensors channels-first: only flattening, reshaping in order and channel shuffles "
               "are written (flatten, reshape, channel_shuffle)")


def layout_op(before: tuple[int, ...], probe: Any) -> tuple[str, dict[str, Value]] | None:
    """What a run of reshapes and transposes amounts to, from `probe`: the run applied to an index array of
    shape `before` (batch first; numpy). ("", {}) for nothing, ("flatten", {}), ("reshape", {shape}),
    ("channel_shuffle", {groups}); None when it moves elements in another way (a spec cannot say it)."""
    import numpy as np

    index = np.arange(int(np.prod(before)), dtype=np.float64).reshape(before)
    after = tuple(probe.shape)
    if np.array_equal(np.asarray(probe).reshape(-1), index.reshape(-1)):
        if after == before:
            return "", {}
        return ("flatten", {}) if len(after) == 2 else ("reshape", {"shape": after[1:]})
    if after != before or len(before) < 3:
        return None
    channels = before[1]
    for groups in range(2, channels):
        if channels % groups == 0:
            shuffled = index.reshape(before[0], groups, channels // groups, *before[2:]).swapaxes(1, 2)
            if np.array_equal(shuffled.reshape(before), probe):
                return "channel_shuffle", {"groups": groups}
    return None


def index_array(shape: tuple[int, ...]) -> Any:
    """The index array a layout run is applied to (`layout_op`)."""
    import numpy as np

    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)


def import_error(code: Code, message: str, path: str, hint: str | None = None, line: int = 1, col: int = 1,
                 excerpt: str = "") -> Diagnostic:
    """A diagnostic of an importer, located in the imported file (or at the module path given as `path`)."""
    return Diagnostic(code, message, Location(path, line, col), hint, excerpt=excerpt)
