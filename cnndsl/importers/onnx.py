"""ONNX -> .cnn: `cnndsl import onnx model.onnx -o net.cnn`.

The model is read with the `onnx` package and checked by its checker; shapes come from ONNX's shape
inference at batch 1 (the inputs' per-sample shapes from the model, or `--input` where they are
symbolic). Constant subgraphs (shape arithmetic, `ConstantOfShape` weights, `Constant` nodes) are folded
by ONNX's reference evaluator before translation, so a weight computed in the graph is a weight like any
other. Each remaining node becomes a cnndsl op; reshape and transpose runs are recognised by what they do
to an index array (a flatten, a channel shuffle, nothing), as in the PyTorch importer.

Layer names: a node with weights is named after its first initializer (`layer1.0.conv1.weight` ->
layer `conv1` in module `layer1.0`, as torch.onnx writes them), the others after the module path
torch.onnx records in the node's metadata (`pkg.torch.onnx.name_scopes`) where there is one. When those
paths do not make a module tree a spec can write (each module one block returning one tensor), the
network is written without blocks, each layer named by its whole path (`layer1_0_conv1`).
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..diagnostics import Code, SpecError
from ..limits import DEFAULT_LIMITS
from .network import (
    LAYOUT_HINT,
    Call,
    ImportedNetwork,
    Input,
    Value,
    import_error,
    index_array,
    layer_name,
    layout_op,
    op_call,
)
from .writer import scope_tree

LAYOUT_OPS = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze"}
PASS_THROUGH = {"Identity", "Dropout"}
FOLDABLE = {"Constant", "ConstantOfShape", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast",
            "Reshape", "Add", "Sub", "Mul", "Div", "Identity", "Range", "Expand", "Transpose", "Floor", "Ceil",
            "Sqrt", "Pow", "Neg", "Abs", "Equal", "Where", "Max", "Min", "ReduceProd", "Tile", "Exp"}


def load_model(path: Path) -> Any:
    """The checked ModelProto at `path`; E705 for a file ONNX cannot read or whose graph is invalid."""
    import onnx

    try:
        model = onnx.load(str(path))  # external data (.onnx.data beside it) read from its directory only
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf's DecodeError, onnx's ValidationError and friends
        message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise SpecError([import_error(Code.E705, f"not a valid ONNX model: {message}", str(path),
                                      hint="export it again (torch.onnx.export) or check it with onnx.checker")]) \
            from None
    return model


class OnnxImporter:
    def __init__(self, model: Any, path: str, name: str, inputs: dict[str, tuple[int, ...]] | None = None):
        self.model, self.path, self.name = model, path, name
        self.overrides = inputs or {}
        self.constants: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.tensors: dict[str, str] = {}  # ONNX value name -> tensor id (aliases resolved)
        self.calls: list[Call] = []
        self.readers: dict[str, list[Any]] = {}
        self.pending_pads: dict[str, tuple[str, list[int]]] = {}  # Pad output -> (its input, pads)
        self.hierarchy = True  # names from module paths (else every layer at the top, named by its path)
        self.pending_layout: dict[str, Any] = {}  # reshape/transpose outputs, emitted where a layer reads them
        self.module_classes: dict[str, str] = {}  # module path -> class name, from torch.onnx's metadata
        self.module_paths: set[str] = set()  # every module path the metadata names (a leaf extends none)

    # -- reading -----------------------------------------------------------------------------------------
    def error(self, node: Any, message: str, hint: str | None = None, code: Code = Code.E703) -> SpecError:
        where = f"node {node.name or '(unnamed)'} ({node.op_type})" if node is not None else "the graph"
        return SpecError([import_error(code, f"{where}: {message}", self.path,
                                       hint=hint or "a spec has the layers listed in docs/ops.md")])

    def prepare(self) -> list[Input]:
        import onnx
        from onnx import numpy_helper

        graph = self.model.graph
        for init in graph.initializer:  # checked before any is read: the dims are the file's claim
            elements = int(np.prod([int(d) for d in init.dims], dtype=np.float64)) if init.dims else 1
            if elements > DEFAULT_LIMITS.imported_weight_elements or any(d < 0 for d in init.dims):
                raise SpecError([import_error(
                    Code.E705, f"initializer {init.name} claims {_dims(list(init.dims))} elements "
                    f"({elements:,}), more than {DEFAULT_LIMITS.imported_weight_elements:,}", self.path,
                    hint="a weight this large is not a CNN layer's; the file is damaged or hostile")])
        self.constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        inputs = []
        for value in graph.input:
            if value.name in self.constants:
                continue  # an initializer listed as an input (opset < 9 style)
            dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
            shape = self.overrides.get(_identifier(value.name)) or self.overrides.get(value.name)
            if shape is None:
                if len(dims) < 2 or any(d is None for d in dims[1:]):
                    raise SpecError([import_error(
                        Code.E705, f"input {value.name} has no fixed per-sample shape ({_dims(dims)})", self.path,
                        hint=f"give it: --input {_identifier(value.name)}=3x224x224")])
                shape = tuple(int(d) for d in dims[1:])  # type: ignore[arg-type]
            inputs.append(Input(value.name, _identifier(value.name), tuple(shape)))
        # shapes at batch 1: the inputs fixed, then ONNX's shape inference
        fixed = onnx.ModelProto()
        fixed.CopyFrom(self.model)
        for value in fixed.graph.input:
            for given in inputs:
                if value.name == given.tensor:
                    dims = value.type.tensor_type.shape.dim
                    del dims[:]
                    for size in (1, *given.shape):
                        dims.add().dim_value = size
        try:
            inferred = onnx.shape_inference.infer_shapes(fixed, strict_mode=False)
        except Exception as exc:
            raise self.error(None, f"shape inference failed: {str(exc).splitlines()[0][:200]}", code=Code.E705) \
                from None
        for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
            dims = value.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                self.shapes[value.name] = tuple(int(d.dim_value) for d in dims)
        for given in inputs:
            self.tensors[given.tensor] = given.tensor
            self.shapes[given.tensor] = (1, *given.shape)
        for node in graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
            scopes = _literal_list(_metadata(node, "pkg.torch.onnx.name_scopes"))
            classes = _literal_list(_metadata(node, "pkg.torch.onnx.class_hierarchy"))
            self.module_paths.update(scopes[1:-1])
            if len(scopes) == len(classes):
                self.module_classes.update(zip(scopes, (c.rsplit(".", 1)[-1] for c in classes), strict=True))
        return inputs

    def fold(self, node: Any) -> bool:
        """Evaluates `node` when all its inputs are constants (or a Shape of a known tensor): True if folded."""
        if node.op_type == "Shape" and node.input[0] in self.shapes:
            self.constants[node.output[0]] = np.array(self.shapes[node.input[0]], dtype=np.int64)
            return True
        if node.op_type not in FOLDABLE or not all(not name or name in self.constants for name in node.input):
            return False
        from onnx.reference import ReferenceEvaluator

        try:
            results = ReferenceEvaluator(node).run(None, {name: self.constants[name] for name in node.input if name})
        except Exception as exc:
            raise self.error(node, f"cannot fold this constant computation ({str(exc).splitlines()[0][:160]})",
                             code=Code.E705) from None
        for name, value in zip(node.output, results, strict=False):
            self.constants[name] = np.asarray(value)
        return True

    def run(self) -> ImportedNetwork:
        inputs = self.prepare()
        for node in self.model.graph.node:
            if self.fold(node):
                continue
            if node.op_type in PASS_THROUGH:
                self.tensors[node.output[0]] = self.tensor(node, node.input[0])
                continue
            if node.op_type in LAYOUT_OPS and not self.layout_is_read(node):
                continue
            converter = CONVERTERS.get(node.op_type)
            if converter is None:
                raise self.error(node, f"the operator {node.op_type} cannot be written as a spec")
            converter(self, node)
        self.unname_clashes()
        outputs = [(_identifier(v.name), self.tensor(None, v.name)) for v in self.model.graph.output]
        params = sum(int(np.prod(value.shape)) for call in self.calls for key, value in call.weights
                     if key in ("weight", "bias"))
        return ImportedNetwork(self.name, Path(self.path).name, "ONNX", inputs, self.calls, outputs, [], params)

    # -- tensors -----------------------------------------------------------------------------------------
    def tensor(self, node: Any, name: str) -> str:
        if name in self.tensors:
            return self.tensors[name]
        if name in self.pending_layout:
            self.emit_layout(name)
            return self.tensors[name]
        if name in self.constants:
            raise self.error(node, f"a constant tensor ({name}, shape {self.constants[name].shape}) as a layer's "
                             "input", hint="a spec's layers read tensors the network computes; constants are weights")
        raise self.error(node, f"its input {name} is not computed by any node the spec has")

    def const(self, node: Any, index: int) -> np.ndarray | None:
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.constants:
            raise self.error(node, f"input {index} ({name}) must be a constant (a weight or a folded computation)")
        return self.constants[name]

    def place(self, node: Any, weight: str | None) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
        """(scope, classes, name) of a layer: from its weight's initializer name, else from torch.onnx's
        module-path metadata, else none."""
        if weight is not None:
            parts = weight.split(".")
            if len(parts) >= 2 and parts[-1] in ("weight", "bias"):
                scope = tuple(parts[:-2])
                return scope, self.classes(scope), parts[-2]
            return (), (), layer_name(weight.rsplit(".", 1)[0] if "." in weight else weight)
        scopes = _literal_list(_metadata(node, "pkg.torch.onnx.name_scopes"))[1:-1]  # the root and the operator
        if scopes:
            path = scopes[-1]  # the innermost module, by its qualified name
            leaf = not any(other.startswith(path + ".") for other in self.module_paths)
            modules = tuple(path.split("."))
            scope = modules[:-1] if leaf else modules
            return scope, self.classes(scope), modules[-1] if leaf else None
        return (), (), None

    def unname_clashes(self) -> None:
        """A layer without weights named after the module it ran in (a flatten inside a module whose linear
        layer holds the weights) gives the name up to the layer with the weights."""
        weighted = {(call.scope, call.name) for call in self.calls if call.weights}
        self.calls = [call if call.weights or (call.scope, call.name) not in weighted
                      else dataclasses.replace(call, name=None) for call in self.calls]

    def classes(self, scope: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(self.module_classes.get(".".join(scope[:k + 1]), "Module") for k in range(len(scope)))

    def emit(self, node: Any, op: str, inputs: list[str], weight: str | None = None,
             weights: tuple[tuple[str, Any], ...] = (), **args: Value) -> None:
        scope, classes, name = self.place(node, weight)
        ids = tuple(self.tensor(node, i) for i in inputs)
        output = node.output[0]
        origin = f"{self.path}: node {node.name or output} ({node.op_type})"
        self.calls.append(op_call(op, ids, output, scope, classes, name, origin, weights, **args))
        self.tensors[output] = output

    def flatten_scopes(self) -> None:
        """Every layer at the top, named by its whole module path (the fallback when the paths do not
        nest as blocks)."""
        self.hierarchy = False
        taken: set[str] = set()
        flat = []
        for call in self.calls:
            name = "_".join(layer_name(p) for p in (*call.scope, call.name) if p) if call.name else None
            if name in taken:
                name = None
            if name:
                taken.add(name)
            flat.append(Call(call.op, call.args, call.inputs, call.output, (), (), name, call.origin,
                             call.positional, call.weights))
        self.calls = flat

    # -- reshapes and transposes ---------------------------------------------------------------------------
    def layout_is_read(self, node: Any) -> bool:
        """Layout nodes are emitted where a layer reads them (a run of them as one op): always deferred."""
        self.pending_layout[node.output[0]] = node
        return False

    def emit_layout(self, name: str) -> None:
        run = []
        current = name
        while current in self.pending_layout:
            run.append(self.pending_layout[current])
            current = self.pending_layout[current].input[0]
        source = current
        before = self.shapes.get(source)
        node = run[0]
        if before is None:
            raise self.error(node, "a reshape whose shapes are unknown")
        probe = index_array(before)
        for step in reversed(run):
            probe = self.apply_layout(step, probe)
        found = layout_op(before, probe)
        if found is None:
            raise self.error(node, "a permutation of the axes cannot be written as a spec", hint=LAYOUT_HINT)
        op, args = found
        if op:
            self.emit(_Renamed(node, name), op, [source], **args)
        else:
            self.tensors[name] = self.tensor(node, source)

    def apply_layout(self, node: Any, probe: np.ndarray) -> np.ndarray:
        attrs = _attributes(node)
        if node.op_type == "Reshape":
            shape = [int(d) for d in self.const(node, 1)]  # type: ignore[union-attr]
            shape = [probe.shape[i] if d == 0 and not attrs.get("allowzero") else d for i, d in enumerate(shape)]
            return probe.reshape(shape)
        if node.op_type == "Flatten":
            axis = int(attrs.get("axis", 1))
            return probe.reshape(int(np.prod(probe.shape[:axis])), -1)
        if node.op_type == "Transpose":
            return probe.transpose(attrs.get("perm") or list(reversed(range(probe.ndim))))
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1:
            axes = [int(a) for a in self.const(node, 1)]  # type: ignore[union-attr]
        if node.op_type == "Squeeze":
            return probe.squeeze(tuple(axes)) if axes else probe.squeeze()
        return np.expand_dims(probe, tuple(axes or ()))



class _Renamed:
    """A node seen as the one whose output is `output` (a run of reshapes is emitted as its last node)."""

    def __init__(self, node: Any, output: str):
        self.name, self.op_type, self.metadata_props = node.name, node.op_type, node.metadata_props
        self.output = [output]
        self.input = node.input


def _literal_list(text: str | None) -> list[str]:
    """torch.onnx's list metadata (`"['', 'layer1', 'layer1.0']"`) as strings; [] when absent or unreadable."""
    if not text:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _metadata(node: Any, key: str) -> str | None:
    for prop in getattr(node, "metadata_props", ()):
        if prop.key == key:
            return str(prop.value)
    return None


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _identifier(name: str) -> str:
    text = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return text if text and not text[0].isdigit() else f"x{text}"


def _f32(value: Any) -> float:
    """An ONNX float attribute (stored as float32) as the decimal it was written as: 1e-05, not
    9.999999747378752e-06."""
    return float(str(np.float32(value)))


def _dims(dims: list[int | None]) -> str:
    return " x ".join("?" if d is None else str(d) for d in dims)


def _compact(values: Any) -> Value:
    items = tuple(int(v) for v in values)
    return items[0] if items and all(v == items[0] for v in items) else items


# ---- converters ------------------------------------------------------------------------------------------
Converter = Callable[[OnnxImporter, Any], None]


def _padding(importer: OnnxImporter, node: Any, rank: int) -> Value:
    attrs = _attributes(node)
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto == "VALID":
        return 0
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if auto == "SAME_LOWER":
            raise importer.error(node, "auto_pad SAME_LOWER (extra padding before) cannot be written as a spec")
        return "same"
    pads = [int(p) for p in attrs.get("pads", [0] * (2 * rank))]
    extra = importer.pending_pads.get(node.input[0])
    if extra is not None:
        pads = [a + b for a, b in zip(pads, extra[1], strict=True)]
    before, after = pads[:rank], pads[rank:]
    if before == after:
        return _compact(before)
    return tuple((b, a) for b, a in zip(before, after, strict=True))


def _source(importer: OnnxImporter, name: str) -> str:
    """A layer's input, through a zero Pad folded into it."""
    return importer.pending_pads[name][0] if name in importer.pending_pads else name


def _conv(importer: OnnxImporter, node: Any) -> None:
    attrs = _attributes(node)
    weight = importer.const(node, 1)
    bias = importer.const(node, 2)
    assert weight is not None
    rank = weight.ndim - 2
    importer.emit(node, "conv", [_source(importer, node.input[0])], weight=node.input[1],
                  weights=(("weight", weight), *((("bias", bias),) if bias is not None else ())),
                  channels=int(weight.shape[0]), kernel=_compact(weight.shape[2:]),
                  stride=_compact(attrs.get("strides", [1] * rank)), padding=_padding(importer, node, rank),
                  dilation=_compact(attrs.get("dilations", [1] * rank)), groups=int(attrs.get("group", 1)),
                  bias=bias is not None)


def _conv_transpose(importer: OnnxImporter, node: Any) -> None:
    attrs = _attributes(node)
    weight = importer.const(node, 1)
    bias = importer.const(node, 2)
    assert weight is not None
    rank = weight.ndim - 2
    groups = int(attrs.get("group", 1))
    if "output_shape" in attrs:
        raise importer.error(node, "a transposed convolution given its output_shape")
    pads = [int(p) for p in attrs.get("pads", [0] * (2 * rank))]
    if pads[:rank] != pads[rank:]:
        raise importer.error(node, "asymmetric padding of a transposed convolution")
    importer.emit(node, "conv_transpose", [node.input[0]], weight=node.input[1],
                  weights=(("weight", weight), *((("bias", bias),) if bias is not None else ())),
                  channels=int(weight.shape[1]) * groups, kernel=_compact(weight.shape[2:]),
                  stride=_compact(attrs.get("strides", [1] * rank)), padding=_compact(pads[:rank]),
                  output_padding=_compact(attrs.get("output_padding", [0] * rank)),
                  dilation=_compact(attrs.get("dilations", [1] * rank)), groups=groups, bias=bias is not None)


def _gemm(importer: OnnxImporter, node: Any) -> None:
    attrs = _attributes(node)
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise importer.error(node, "a Gemm with transA, alpha or beta", hint="a spec's linear is x W^T + b")
    matrix = importer.const(node, 1)
    bias = importer.const(node, 2)
    assert matrix is not None
    weight = matrix if attrs.get("transB", 0) else matrix.T
    _linear(importer, node, weight, bias, node.input[1])


def _matmul(importer: OnnxImporter, node: Any) -> None:
    matrix = importer.const(node, 1)
    assert matrix is not None
    _linear(importer, node, matrix.T, None, node.input[1])


def _linear(importer: OnnxImporter, node: Any, weight: np.ndarray, bias: np.ndarray | None, name: str) -> None:
    shape = importer.shapes.get(node.input[0])
    if shape is not None and len(shape) != 2:
        raise importer.error(node, f"a matrix product over a {len(shape)}-d tensor",
                             hint="a spec's linear reads a flat vector: flatten before it")
    if bias is not None and bias.size != weight.shape[0]:
        raise importer.error(node, "a bias that is not one value per output feature")
    importer.emit(node, "linear", [node.input[0]], weight=name,
                  weights=(("weight", weight), *((("bias", bias.reshape(-1)),) if bias is not None else ())),
                  features=int(weight.shape[0]), bias=bias is not None)


def _batchnorm(importer: OnnxImporter, node: Any) -> None:
    attrs = _attributes(node)
    scale, shift, mean, var = (importer.const(node, i) for i in range(1, 5))
    importer.emit(node, "batchnorm", [node.input[0]], weight=node.input[1],
                  weights=(("weight", scale), ("bias", shift), ("running_mean", mean), ("running_var", var)),
                  eps=_f32(attrs.get("epsilon", 1e-5)))


def _simple(op: str, **settings: Callable[[dict[str, Any]], Value]) -> Converter:
    def convert(importer: OnnxImporter, node: Any) -> None:
        attrs = _attributes(node)
        importer.emit(node, op, [node.input[0]], **{k: read(attrs) for k, read in settings.items()})
    return convert


def _clip(importer: OnnxImporter, node: Any) -> None:
    attrs = _attributes(node)
    low = attrs.get("min", importer.const(node, 1))
    high = attrs.get("max", importer.const(node, 2))
    low = float(low) if low is not None else float("-inf")
    high = float(high) if high is not None else float("inf")
    if (low, high) == (0.0, 6.0):
        importer.emit(node, "relu6", [node.input[0]])
    elif (low, high) == (0.0, float("inf")):
        importer.emit(node, "relu", [node.input[0]])
    else:
        raise importer.error(node, f"a clip to [{low}, {high}] cannot be written as a spec (relu and relu6 can)")


def _hardsigmoid(importer: OnnxImporter, node: Any) -> None:
    attrs = _attributes(node)
    if not np.isclose(attrs.get("alpha", 0.2), 1 / 6) or not np.isclose(attrs.get("beta", 0.5), 0.5):
        raise importer.error(node, "a hard sigmoid other than x / 6 + 1/2 (PyTorch's)")
    importer.emit(node, "hardsigmoid", [node.input[0]])


def _prelu(importer: OnnxImporter, node: Any) -> None:
    slope = importer.const(node, 1)
    assert slope is not None
    importer.emit(node, "prelu", [node.input[0]], weight=node.input[1], weights=(("weight", slope.reshape(-1)),),
                  per_channel=slope.size > 1)


def _softmax(importer: OnnxImporter, node: Any) -> None:
    rank = len(importer.shapes.get(node.input[0], (1, 1)))
    axis = int(_attributes(node).get("axis", -1))
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise importer.error(node, "a softmax over the batch axis")
    importer.emit(node, "softmax", [node.input[0]], dim=axis - 1)


def _pool(op: str) -> Converter:
    def convert(importer: OnnxImporter, node: Any) -> None:
        attrs = _attributes(node)
        kernel = [int(k) for k in attrs["kernel_shape"]]
        rank = len(kernel)
        stride = _compact(attrs.get("strides", [1] * rank))
        stride = None if stride == _compact(kernel) else stride  # the op's default: the kernel
        args: dict[str, Value] = {"kernel": _compact(kernel), "stride": stride,
                                  "padding": _padding(importer, node, rank), "ceil": bool(attrs.get("ceil_mode", 0))}
        if op == "maxpool":
            args["dilation"] = _compact(attrs.get("dilations", [1] * rank))
            if len(node.output) > 1 and node.output[1]:
                raise importer.error(node, "max pooling that returns its indices")
        else:
            args["count_include_pad"] = bool(attrs.get("count_include_pad", 0))
        importer.emit(node, op, [_source(importer, node.input[0])], **args)
    return convert


def _binary(op: str) -> Converter:
    def convert(importer: OnnxImporter, node: Any) -> None:
        if any(name in importer.constants for name in node.input):
            raise importer.error(node, f"{node.op_type} with a constant operand cannot be written as a spec",
                                 hint="a spec's add and mul combine two computed tensors")
        if len(node.input) < 2:
            importer.tensors[node.output[0]] = importer.tensor(node, node.input[0])
            return
        importer.emit(node, op, list(node.input))
    return convert


def _concat(importer: OnnxImporter, node: Any) -> None:
    rank = len(importer.shapes.get(node.output[0], ()))
    axis = int(_attributes(node)["axis"])
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise importer.error(node, "a concatenation along the batch")
    if len(node.input) == 1:
        importer.tensors[node.output[0]] = importer.tensor(node, node.input[0])
        return
    importer.emit(node, "concat", list(node.input), dim=axis - 1)


def _resize(importer: OnnxImporter, node: Any) -> None:
    attrs = _attributes(node)
    mode = attrs.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    transform = attrs.get("coordinate_transformation_mode", b"half_pixel")
    transform = transform.decode() if isinstance(transform, bytes) else str(transform)
    before, after = importer.shapes.get(node.input[0]), importer.shapes.get(node.output[0])
    if before is None or after is None:
        raise importer.error(node, "a resize whose shapes are unknown")
    rank = len(before) - 2
    spatial = {1: "linear", 2: "bilinear", 3: "trilinear"}
    if mode == "nearest":
        spec_mode, align = "nearest", False
    elif mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        spec_mode, align = spatial[rank], transform == "align_corners"
    else:
        raise importer.error(node, f"a resize in mode {mode} with {transform} coordinates")
    factors = [a / b for a, b in zip(after[2:], before[2:], strict=True)]
    if all(f == int(f) for f in factors):
        importer.emit(node, "upsample", [node.input[0]], scale=_compact(factors), mode=spec_mode,
                      align_corners=align)
    else:
        importer.emit(node, "upsample", [node.input[0]], size=_compact(after[2:]), mode=spec_mode,
                      align_corners=align)


def _pad(importer: OnnxImporter, node: Any) -> None:
    """A zero Pad read only by convolutions and poolings is folded into their padding."""
    attrs = _attributes(node)
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    pads = attrs.get("pads")
    if pads is None:
        pads = [int(p) for p in importer.const(node, 1)]  # type: ignore[union-attr]
    value = importer.const(node, 2) if len(node.input) > 2 else None
    readers = importer.readers.get(node.output[0], [])
    rank = len(pads) // 2
    if mode != "constant" or (value is not None and float(value) != 0.0) or any(pads[0:2]) or \
            any(pads[rank:rank + 2]) or not readers or \
            any(r.op_type not in ("Conv", "MaxPool", "AveragePool") for r in readers):
        raise importer.error(node, "a Pad that is not zero padding of a convolution's or pooling's spatial axes",
                             hint="a spec pads inside its convolutions and poolings")
    importer.pending_pads[node.output[0]] = (node.input[0], [*pads[2:rank], *pads[rank + 2:]])


def _split(importer: OnnxImporter, node: Any) -> None:
    attrs = _attributes(node)
    shape = importer.shapes.get(node.input[0])
    axis = int(attrs.get("axis", 0))
    if shape is None:
        raise importer.error(node, "a split whose shape is unknown")
    axis = axis + len(shape) if axis < 0 else axis
    sizes = attrs.get("split")
    if sizes is None and len(node.input) > 1 and node.input[1]:
        sizes = [int(s) for s in importer.const(node, 1)]  # type: ignore[union-attr]
    if sizes is None:
        parts = len(node.output)
        sizes = [shape[axis] // parts] * parts
    if axis == 0:
        raise importer.error(node, "a split of the batch")
    start = 0
    for output, size in zip(node.output, sizes, strict=True):
        importer.emit(_Renamed(node, output), "slice", [node.input[0]], start=start, stop=start + int(size),
                      dim=axis - 1)
        start += int(size)


def _slice(importer: OnnxImporter, node: Any) -> None:
    starts, ends = importer.const(node, 1), importer.const(node, 2)
    axes = importer.const(node, 3)
    steps = importer.const(node, 4)
    shape = importer.shapes.get(node.input[0])
    stepped = steps is not None and int(steps[0]) != 1
    if starts is None or ends is None or shape is None or len(starts) != 1 or stepped:
        raise importer.error(node, "a slice of more than one axis, or with a step")
    axis = int(axes[0]) if axes is not None else 0
    axis = axis + len(shape) if axis < 0 else axis
    size = shape[axis]
    start = max(0, min(size, int(starts[0]) + (size if int(starts[0]) < 0 else 0)))
    stop = max(0, min(size, int(ends[0]) + (size if int(ends[0]) < 0 else 0)))
    if axis == 0:
        raise importer.error(node, "a slice of the batch")
    importer.emit(node, "slice", [node.input[0]], start=start, stop=stop, dim=axis - 1)


def _reduce_mean(importer: OnnxImporter, node: Any) -> None:
    attrs = _attributes(node)
    shape = importer.shapes.get(node.input[0])
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1:
        axes = [int(a) for a in importer.const(node, 1)]  # type: ignore[union-attr]
    if shape is None or axes is None or {a + len(shape) if a < 0 else a for a in axes} != set(range(2, len(shape))):
        raise importer.error(node, "a mean over axes other than all spatial ones")
    if attrs.get("keepdims", 1):
        importer.emit(node, "global_avgpool", [node.input[0]])
        return
    pooled = _Renamed(node, f"{node.output[0]}__pooled")
    importer.emit(pooled, "global_avgpool", [node.input[0]])
    importer.emit(node, "flatten", [pooled.output[0]])


def _lrn(importer: OnnxImporter, node: Any) -> None:
    attrs = _attributes(node)
    importer.emit(node, "lrn", [node.input[0]], size=int(attrs["size"]), alpha=_f32(attrs.get("alpha", 1e-4)),
                  beta=_f32(attrs.get("beta", 0.75)), k=_f32(attrs.get("bias", 1.0)))


def _global(op: str) -> Converter:
    return lambda importer, node: importer.emit(node, op, [node.input[0]])


CONVERTERS: dict[str, Converter] = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "Gemm": _gemm, "MatMul": _matmul,
    "BatchNormalization": _batchnorm,
    "Relu": _global("relu"), "Sigmoid": _global("sigmoid"), "Tanh": _global("tanh"), "HardSwish": _global("hardswish"),
    "Mish": _global("mish"), "Softplus": _global("softplus"),
    "LeakyRelu": _simple("leaky_relu", slope=lambda a: _f32(a.get("alpha", 0.01))),
    "Elu": _simple("elu", alpha=lambda a: _f32(a.get("alpha", 1.0))),
    "Gelu": _simple("gelu", approximate=lambda a: a.get("approximate", b"none") in (b"tanh", "tanh")),
    "Clip": _clip, "HardSigmoid": _hardsigmoid, "PRelu": _prelu, "Softmax": _softmax,
    "MaxPool": _pool("maxpool"), "AveragePool": _pool("avgpool"),
    "GlobalAveragePool": _global("global_avgpool"), "GlobalMaxPool": _global("global_maxpool"),
    "Add": _binary("add"), "Sum": _binary("add"), "Mul": _binary("mul"), "Concat": _concat,
    "LRN": _lrn, "Resize": _resize, "Upsample": _resize, "Pad": _pad, "Split": _split, "Slice": _slice,
    "ReduceMean": _reduce_mean,
}


def import_onnx(path: Path, name: str, inputs: dict[str, tuple[int, ...]] | None = None) -> ImportedNetwork:
    """The imported form of the ONNX model at `path` (per-sample input shapes from the model, or `inputs`)."""
    importer = OnnxImporter(load_model(path), str(path), name, inputs)
    network = importer.run()
    try:
        scope_tree(network)
    except SpecError:  # the module paths do not nest as blocks: every layer at the top
        importer.flatten_scopes()
        network.calls = importer.calls
        network.notes.append("the module paths of the node names do not make blocks a spec can write: layers "
                             "are named by their whole path")
    return network
