"""Keras 3 -> .cnn: `cnndsl import keras model.keras` (or the `config.json` of `model.to_json()`).

The model's configuration is read as data, never by running the model file: a `.keras` file is a zip
archive whose `config.json` describes the layers and whose `model.weights.h5` holds the weights (read
with h5py, arrays only, for the verification). The archive may hold only those and `metadata.json`;
any other member is refused.

Keras computes channels-last (N, H, W, C); a spec is channels-first. Shapes are written channels-first
(an input of 224 x 224 x 3 is `3 x 224 x 224`), channel axes become axis 0 (`Concatenate(axis=-1)` is
`concat`), and a `Dense` after `Flatten` reads its features in another order (H, W, C against C, H, W):
the same layer with its weight's columns permuted, which the verification applies when it loads the
weights. A `Dense` on an image (per position) is `linear(over=channels)`.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..diagnostics import Code, Diagnostic, Location, SpecError
from ..limits import DEFAULT_LIMITS
from .network import Call, ImportedNetwork, Input, Value, layer_name, op_call

ELEMENTWISE = {"relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "gelu", "elu", "hardsigmoid", "hardswish",
               "mish", "softplus", "dropout"}
MEMBERS = {"config.json", "metadata.json", "model.weights.h5"}
MAX_CONFIG_BYTES = 64 << 20  # a config this large is not a CNN's description but an attack on the reader
ACTIVATIONS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax", "swish": "silu",
               "silu": "silu", "gelu": "gelu", "elu": "elu", "relu6": "relu6", "hard_sigmoid": "hardsigmoid",
               "hard_silu": "hardswish", "hard_swish": "hardswish", "mish": "mish", "leaky_relu": "leaky_relu",
               "softplus": "softplus"}


def _error(path: str, code: Code, message: str, hint: str | None = None) -> SpecError:
    return SpecError([Diagnostic(code, message, Location(path, 1, 1), hint)])


def read_archive(path: Path) -> tuple[dict[str, Any], Any]:
    """The configuration (and the weights file, opened with h5py, or None) of a `.keras` archive or a bare
    config.json; E705 for anything else."""
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8")), None
        except (ValueError, UnicodeDecodeError) as exc:
            raise _error(str(path), Code.E705, f"not a Keras configuration: {exc}") from None
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _error(str(path), Code.E705, f"not a .keras archive: {exc}",
                     "a .keras file is the zip archive model.save() writes") from None
    with archive:
        names = set(archive.namelist())
        extra = sorted(names - MEMBERS)
        if extra:
            raise _error(str(path), Code.E705, f"the archive holds {extra[0]!r}, which a .keras file does not",
                         "a .keras archive holds config.json, metadata.json and model.weights.h5 only")
        if "config.json" not in names:
            raise _error(str(path), Code.E705, "the archive has no config.json")
        info = archive.getinfo("config.json")
        if info.file_size > MAX_CONFIG_BYTES:
            raise _error(str(path), Code.E705, f"config.json claims {info.file_size:,} bytes")
        try:
            config = json.loads(archive.read("config.json"))
        except (ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise _error(str(path), Code.E705, f"config.json cannot be read: {exc}") from None
        weights = None
        if "model.weights.h5" in names:
            import h5py

            declared = archive.getinfo("model.weights.h5").file_size
            if declared > 4 * DEFAULT_LIMITS.imported_weight_elements:  # float32 bytes: a bomb, not a CNN
                raise _error(str(path), Code.E705, f"model.weights.h5 claims {declared:,} bytes")

            try:
                weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
            except (OSError, zipfile.BadZipFile, EOFError) as exc:
                raise _error(str(path), Code.E705, f"model.weights.h5 cannot be read: {exc}") from None
    return config, weights


def keras_snake(name: str) -> str:
    """Keras 3's name for a class's weights group (`BatchNormalization` -> batch_normalization)."""
    text = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", text).lower()


class KerasImporter:
    def __init__(self, config: dict[str, Any], weights: Any, path: str, name: str):
        self.config, self.weights, self.path, self.name = config, weights, path, name
        self.calls: list[Call] = []
        self.tensors: dict[tuple[str, int], str] = {}  # (layer, tensor index) -> tensor id
        self.shapes: dict[str, tuple[int, ...]] = {}  # tensor id -> channels-last shape per sample
        self.groups: dict[str, str] = {}  # layer name -> its weights group in the h5 file
        self.flattened: dict[str, tuple[int, ...]] = {}  # a Flatten's output -> the (H, W, C) it flattened

    def error(self, layer: str, message: str, hint: str | None = None, code: Code = Code.E703) -> SpecError:
        return _error(self.path, code, f"layer {layer}: {message}", hint)

    def run(self) -> ImportedNetwork:
        if not isinstance(self.config, dict):
            raise _error(self.path, Code.E705, f"a JSON {type(self.config).__name__} is not a Keras model "
                         "configuration", "save a Sequential or functional model (model.save('model.keras'))")
        kind = self.config.get("class_name")
        body = self.config.get("config", {})
        if kind not in ("Functional", "Model", "Sequential") or not isinstance(body, dict):
            raise _error(self.path, Code.E705, f"a {kind!r} is not a Keras model configuration",
                         "save a Sequential or functional model (model.save('model.keras'))")
        layers = body.get("layers", [])
        counts: dict[str, int] = {}
        for layer in layers:
            group = keras_snake(str(layer.get("class_name", "")))
            self.groups[layer["config"]["name"]] = group if group not in counts else f"{group}_{counts[group]}"
            counts[group] = counts.get(group, 0) + 1
        inputs: list[Input] = []
        previous: str | None = None
        for layer in layers:
            cls, settings = layer.get("class_name"), layer.get("config", {})
            name = settings.get("name", cls)
            if cls == "InputLayer":
                inputs.append(self.input(name, settings.get("batch_shape") or settings.get("batch_input_shape")))
                previous = self.tensors[(name, 0)]
                continue
            if kind == "Sequential":
                if previous is None:
                    shape = body.get("build_input_shape") or settings.get("batch_input_shape")
                    inputs.append(self.input("input", shape))
                    previous = self.tensors[("input", 0)]
                sources = [previous]
            else:
                sources = self.inbound(layer, name)
            self.layer(str(cls), name, settings, sources)
            previous = self.tensors[(name, 0)]
        outputs = self.outputs(body, kind, previous)
        params = self.source_params()
        notes = []
        if self.flattened:
            notes.append("Keras flattens channels-last (H, W, C), the spec channels-first: a Dense after Flatten "
                         "is the same layer with its weight's columns permuted (loading Keras weights must permute)")
        return ImportedNetwork(self.name, Path(self.path).name, "Keras", inputs, self.calls, outputs, notes, params)

    def input(self, name: str, shape: Any) -> Input:
        if not isinstance(shape, list) or len(shape) < 2 or any(not isinstance(d, int) or d <= 0 for d in shape[1:]):
            raise self.error(name, f"an input of shape {shape}", "give the model's Input a fixed shape", Code.E705)
        per_sample = tuple(int(d) for d in shape[1:])
        tensor = f"in_{layer_name(name)}"
        self.tensors[(name, 0)] = tensor
        self.shapes[tensor] = per_sample
        spec_shape = (per_sample[-1], *per_sample[:-1]) if len(per_sample) > 1 else per_sample
        return Input(tensor, layer_name(name), spec_shape)

    def inbound(self, layer: dict[str, Any], name: str) -> list[str]:
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) != 1:
            raise self.error(name, f"a layer called {len(nodes)} times (shared weights)" if nodes else
                             "a layer no tensor reaches", "give each use its own layer")
        sources = []
        for tensor in _keras_tensors(nodes[0].get("args", [])):
            history = tensor.get("config", {}).get("keras_history")
            if not history or (history[0], history[2]) not in self.tensors:
                raise self.error(name, f"reads {history}, which no earlier layer makes", code=Code.E702)
            sources.append(self.tensors[(history[0], history[2])])
        return sources

    def outputs(self, body: dict[str, Any], kind: Any, last: str | None) -> list[tuple[str, str]]:
        if kind == "Sequential":
            return [("out", last)] if last else []
        found = body.get("output_layers") or []
        if found and isinstance(found[0], str):
            found = [found]
        return [(layer_name(entry[0]), self.tensors[(entry[0], entry[2])]) for entry in found]

    # -- layers ----------------------------------------------------------------------------------------------
    def layer(self, cls: str, name: str, settings: dict[str, Any], sources: list[str]) -> None:
        if settings.get("data_format", "channels_last") != "channels_last":
            raise self.error(name, "data_format channels_first", "save the model channels-last (Keras's default)")
        converter = LAYERS.get(cls)
        if converter is None:
            raise self.error(name, f"Keras's {cls} layer cannot be written as a spec",
                             "a spec has the layers listed in docs/ops.md")
        converter(self, name, settings, sources)

    def emit(self, name: str, op: str, sources: list[str], shape: tuple[int, ...], named: bool = True,
             weights: tuple[tuple[str, Any], ...] = (), suffix: str = "", **args: Value) -> str:
        output = f"{layer_name(name)}{suffix}"
        call = op_call(op, tuple(sources), output, (), (), layer_name(name) + suffix if named else None,
                       f"{self.path}: layer {name}", weights, **args)
        self.calls.append(call)
        self.shapes[output] = shape
        self.tensors[(name, 0)] = output
        if op in ELEMENTWISE and sources[0] in self.flattened:  # still in Keras's flattened order
            self.flattened[output] = self.flattened[sources[0]]
        return output

    def activation(self, name: str, settings: dict[str, Any], tensor: str) -> None:
        """A layer's own `activation` setting, as an op after it."""
        activation = settings.get("activation", "linear")
        if isinstance(activation, dict):
            activation = activation.get("config", {}).get("name", activation.get("class_name"))
        if activation in (None, "linear"):
            return
        op = ACTIVATIONS.get(str(activation))
        if op is None:
            raise self.error(name, f"the activation {activation!r}")
        self.emit(name, op, [tensor], self.shapes[tensor], named=False, suffix="_activation")

    def vars(self, name: str) -> list[Any]:
        """The layer's weights in Keras's order (kernel, bias; gamma, beta, mean, variance), as arrays."""
        if self.weights is None:
            return []
        group = self.weights.get(f"layers/{self.groups.get(name, name)}/vars")
        return [np.asarray(group[str(i)]) for i in range(len(group))] if group is not None else []

    def source_params(self) -> int | None:
        """The weights file's count, moving statistics left out (buffers, not parameters)."""
        if self.weights is None:
            return None
        total = 0
        for call in self.calls:
            total += sum(int(np.prod(v.shape)) for k, v in call.weights if k in ("weight", "bias"))
        return total


def _keras_tensors(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return [value]
    if isinstance(value, list | tuple):
        return [t for item in value for t in _keras_tensors(item)]
    return []


def _pair(value: Any) -> Value:
    if isinstance(value, list | tuple):
        items = tuple(int(v) for v in value)
        return items[0] if all(v == items[0] for v in items) else items
    return int(value) if value is not None else None


def _spatial(shape: tuple[int, ...], kernel: Any, strides: Any, padding: str, dilation: Any = 1) -> tuple[int, ...]:
    """Keras's output size of a window over channels-last `shape` (channels left as they are)."""
    rank = len(shape) - 1
    k = [kernel] * rank if isinstance(kernel, int) else list(kernel)
    s = [strides] * rank if isinstance(strides, int) else list(strides)
    d = [dilation] * rank if isinstance(dilation, int) else list(dilation)
    if padding == "same":
        sizes = [-(-n // st) for n, st in zip(shape[:-1], s, strict=True)]
    else:
        sizes = [(n - (kk - 1) * dd - 1) // st + 1 for n, kk, st, dd in zip(shape[:-1], k, s, d, strict=True)]
    return (*sizes, shape[-1])


def _conv(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
    shape = importer.shapes[sources[0]]
    filters, groups = int(settings["filters"]), int(settings.get("groups", 1))
    kernel, strides = _pair(settings["kernel_size"]), _pair(settings.get("strides", 1))
    dilation, padding = _pair(settings.get("dilation_rate", 1)), str(settings.get("padding", "valid"))
    values = importer.vars(name)
    weights: tuple[tuple[str, Any], ...] = (("weight", values[0].transpose(3, 2, 0, 1)),) if values else ()
    if len(values) > 1:
        weights += (("bias", values[1]),)
    out = _spatial(shape, kernel, strides, padding, dilation)[:-1] + (filters,)
    tensor = importer.emit(name, "conv", sources, out, weights=weights, channels=filters, kernel=kernel,
                           stride=strides, padding=0 if padding == "valid" else "same", dilation=dilation,
                           groups=groups, bias=bool(settings.get("use_bias", True)))
    importer.activation(name, settings, tensor)


def _depthwise(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
    shape = importer.shapes[sources[0]]
    channels, multiplier = shape[-1], int(settings.get("depth_multiplier", 1))
    kernel, strides = _pair(settings["kernel_size"]), _pair(settings.get("strides", 1))
    dilation, padding = _pair(settings.get("dilation_rate", 1)), str(settings.get("padding", "valid"))
    values = importer.vars(name)
    weights: tuple[tuple[str, Any], ...] = ()
    if values:  # (kh, kw, C, multiplier) -> (C * multiplier, 1, kh, kw): output channel c * multiplier + m
        kh, kw = values[0].shape[:2]
        weights = (("weight", values[0].reshape(kh, kw, channels * multiplier).transpose(2, 0, 1)[:, None]),)
        if len(values) > 1:
            weights += (("bias", values[1]),)
    out = _spatial(shape, kernel, strides, padding, dilation)[:-1] + (channels * multiplier,)
    tensor = importer.emit(name, "conv", sources, out, weights=weights, channels=channels * multiplier,
                           kernel=kernel, stride=strides, padding=0 if padding == "valid" else "same",
                           dilation=dilation, groups=channels, bias=bool(settings.get("use_bias", True)))
    importer.activation(name, settings, tensor)


def _dense(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
    shape = importer.shapes[sources[0]]
    units = int(settings["units"])
    values = importer.vars(name)
    weights: tuple[tuple[str, Any], ...] = ()
    if values:
        kernel = values[0]
        before = importer.flattened.get(sources[0])
        if before is not None:  # columns from Keras's (H, W, C) order to the spec's (C, H, W)
            kernel = kernel.reshape(*before, units).transpose(len(before) - 1, *range(len(before) - 1), len(before))
            kernel = kernel.reshape(-1, units)
        weights = (("weight", kernel.T),) + ((("bias", values[1]),) if len(values) > 1 else ())
    over = "flat" if len(shape) == 1 else "channels"
    tensor = importer.emit(name, "linear", sources, (*shape[:-1], units), weights=weights, features=units,
                           bias=bool(settings.get("use_bias", True)), over=over)
    importer.activation(name, settings, tensor)


def _batchnorm(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
    shape = importer.shapes[sources[0]]
    axis = settings.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if axis not in (-1, len(shape)):
        raise importer.error(name, f"batch normalisation over axis {axis}", "a spec normalises the channels")
    center, scale = bool(settings.get("center", True)), bool(settings.get("scale", True))
    if center != scale:
        raise importer.error(name, "batch normalisation with only one of center and scale")
    values = importer.vars(name)
    names = (["weight", "bias"] if scale else []) + ["running_mean", "running_var"]
    weights = tuple(zip(names, values, strict=True)) if values else ()
    importer.emit(name, "batchnorm", sources, shape, weights=weights, eps=float(settings.get("epsilon", 1e-3)),
                  momentum=round(1 - float(settings.get("momentum", 0.99)), 6), affine=scale)


def _pool(op: str) -> Callable[[KerasImporter, str, dict[str, Any], list[str]], None]:
    def convert(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
        shape = importer.shapes[sources[0]]
        kernel = _pair(settings.get("pool_size", 2))
        strides = _pair(settings.get("strides") or settings.get("pool_size", 2))
        padding = str(settings.get("padding", "valid"))
        args: dict[str, Value] = {"kernel": kernel, "stride": None if strides == kernel else strides,
                                  "padding": 0 if padding == "valid" else "same"}
        if op == "avgpool":
            args["count_include_pad"] = False  # Keras averages over the window inside the input
        importer.emit(name, op, sources, _spatial(shape, kernel, strides, padding), **args)
    return convert


def _global(op: str) -> Callable[[KerasImporter, str, dict[str, Any], list[str]], None]:
    def convert(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
        shape = importer.shapes[sources[0]]
        if settings.get("keepdims"):
            importer.emit(name, op, sources, (*([1] * (len(shape) - 1)), shape[-1]))
            return
        pooled = importer.emit(name, op, sources, (*([1] * (len(shape) - 1)), shape[-1]), suffix="_pool")
        importer.emit(name, "flatten", [pooled], (shape[-1],), named=False)
    return convert


def _flatten(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
    shape = importer.shapes[sources[0]]
    tensor = importer.emit(name, "flatten", sources, (int(np.prod(shape)),))
    if len(shape) > 1 and any(d != 1 for d in shape[:-1]):
        importer.flattened[tensor] = shape


def _activation_layer(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
    activation = settings.get("activation")
    op = ACTIVATIONS.get(str(activation))
    if op is None:
        raise importer.error(name, f"the activation {activation!r}")
    importer.emit(name, op, sources, importer.shapes[sources[0]])


def _relu(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
    shape = importer.shapes[sources[0]]
    top, slope = settings.get("max_value"), float(settings.get("negative_slope", 0.0))
    threshold = float(settings.get("threshold", 0.0))
    if threshold != 0.0 or (top is not None and (float(top) != 6.0 or slope)):
        raise importer.error(name, f"a ReLU with max_value {top}, slope {slope}, threshold {threshold}")
    if top is not None:
        importer.emit(name, "relu6", sources, shape)
    elif slope:
        importer.emit(name, "leaky_relu", sources, shape, slope=slope)
    else:
        importer.emit(name, "relu", sources, shape)


def _merge(op: str) -> Callable[[KerasImporter, str, dict[str, Any], list[str]], None]:
    def convert(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
        importer.emit(name, op, sources, importer.shapes[sources[0]])
    return convert


def _concat(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
    shape = importer.shapes[sources[0]]
    axis = int(settings.get("axis", -1))
    if axis not in (-1, len(shape)):
        raise importer.error(name, f"a concatenation over axis {axis}", "a spec concatenates channels here")
    channels = sum(importer.shapes[s][-1] for s in sources)
    importer.emit(name, "concat", sources, (*shape[:-1], channels), dim=0)


def _dropout(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
    importer.emit(name, "dropout", sources, importer.shapes[sources[0]], p=float(settings.get("rate", 0.5)))


def _softmax(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
    axis = settings.get("axis", -1)
    if axis not in (-1, [-1]):
        raise importer.error(name, f"a softmax over axis {axis}")
    importer.emit(name, "softmax", sources, importer.shapes[sources[0]], dim=0)


def _upsample(importer: KerasImporter, name: str, settings: dict[str, Any], sources: list[str]) -> None:
    shape = importer.shapes[sources[0]]
    size = _pair(settings.get("size", 2))
    mode = {"nearest": "nearest", "bilinear": "bilinear"}.get(str(settings.get("interpolation", "nearest")))
    if mode is None:
        raise importer.error(name, f"up-sampling by {settings.get('interpolation')}")
    factors = [size] * (len(shape) - 1) if isinstance(size, int) else list(size)  # type: ignore[list-item]
    importer.emit(name, "upsample", sources, (*(n * f for n, f in zip(shape[:-1], factors, strict=True)), shape[-1]),
                  scale=size, mode=mode)


LAYERS: dict[str, Callable[[KerasImporter, str, dict[str, Any], list[str]], None]] = {
    "Conv1D": _conv, "Conv2D": _conv, "Conv3D": _conv, "DepthwiseConv2D": _depthwise, "Dense": _dense,
    "BatchNormalization": _batchnorm,
    "MaxPooling1D": _pool("maxpool"), "MaxPooling2D": _pool("maxpool"), "MaxPooling3D": _pool("maxpool"),
    "AveragePooling1D": _pool("avgpool"), "AveragePooling2D": _pool("avgpool"), "AveragePooling3D": _pool("avgpool"),
    "GlobalAveragePooling1D": _global("global_avgpool"), "GlobalAveragePooling2D": _global("global_avgpool"),
    "GlobalMaxPooling1D": _global("global_maxpool"), "GlobalMaxPooling2D": _global("global_maxpool"),
    "Flatten": _flatten, "Activation": _activation_layer, "ReLU": _relu, "Softmax": _softmax,
    "Add": _merge("add"), "Multiply": _merge("mul"), "Concatenate": _concat,
    "Dropout": _dropout, "SpatialDropout2D": _dropout, "UpSampling2D": _upsample,
}


def import_keras(path: Path, name: str) -> ImportedNetwork:
    """The imported form of a Keras 3 model file (`.keras`) or configuration (`.json`)."""
    config, weights = read_archive(path)
    try:
        return KerasImporter(config, weights, str(path), name).run()
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # a configuration missing what Keras writes
        raise _error(str(path), Code.E705, f"the configuration is not one Keras writes ({type(exc).__name__}: {exc})",
                     "save the model with Keras 3 (model.save('model.keras'))") from None
    finally:
        if weights is not None:
            weights.close()
