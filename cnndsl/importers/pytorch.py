"""PyTorch -> .cnn: `cnndsl import torch torchvision.models:resnet50 --input image=3x224x224`.

The module is traced with torch.fx's symbolic tracer, not torch.export: fx keeps each leaf module (a
Conv2d, a BatchNorm2d) as one call under its qualified name, with the module object and its settings at
hand, which is the level a spec is written at, and records for every node the stack of modules it ran in
(`nn_module_stack`), which becomes the spec's blocks. torch.export lowers to ATen operators, where a
convolution's module survives only as metadata and batch norm becomes `_native_batch_norm_legit`.

The traced graph is run once on an example input (batch 1) to learn every tensor's shape and every
size computation's value (`x.view(x.size(0), -1)`); reshapes, transposes and permutes are recognised by
what they do to an index tensor (a flatten, a channel shuffle, nothing), not by their spelling.
Anything a spec cannot say (data-dependent control flow, an op with no cnndsl counterpart, a module
called twice, arithmetic with constants) is an error naming the module path and the op.
"""

from __future__ import annotations

import importlib
import json
import linecache
import operator
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from ..diagnostics import Code, SpecError
from .network import LAYOUT_HINT, Call, ImportedNetwork, Input, Value, import_error, index_array, layout_op, op_call


def build_model(target: str, arguments: str | None = None) -> nn.Module:
    """`package.module:callable` called with `arguments` (a JSON object of keyword arguments). This
    imports and runs the user's code, as building any PyTorch model does."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SpecError([import_error(Code.E705, f"{target!r} is not MODULE:CALLABLE", target,
                                      hint="e.g. torchvision.models:resnet50 or mypackage.nets:MyNet")])
    try:
        kwargs = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError as exc:
        raise SpecError([import_error(Code.E705, f"the arguments are not JSON: {exc.msg} at column {exc.colno}",
                                      "--args", hint='write a JSON object, e.g. \'{"num_classes": 10}\'')]) from None
    if not isinstance(kwargs, dict):
        raise SpecError([import_error(Code.E705, "the arguments must be a JSON object of keyword arguments",
                                      "--args", hint='e.g. \'{"num_classes": 10}\'')])
    try:
        built: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            built = getattr(built, part)
    except (ImportError, AttributeError) as exc:
        raise SpecError([import_error(Code.E705, f"cannot find {target}: {exc}", target,
                                      hint="the module must be importable from here (check PYTHONPATH)")]) from None
    try:
        model = built(**kwargs)
    except Exception as exc:  # the user's constructor: any failure is theirs, reported with its message
        raise SpecError([import_error(Code.E705, f"{target}(**{kwargs}) failed: {type(exc).__name__}: {exc}",
                                      target)]) from None
    if not isinstance(model, nn.Module):
        raise SpecError([import_error(Code.E705, f"{target} returned a {type(model).__name__}, not an nn.Module",
                                      target)])
    return model


class _Tracer(fx.Tracer):
    """fx's tracer, keeping as one call every module a converter knows by name (torchvision's
    StochasticDepth and LayerNorm2d), as it keeps torch.nn's own, and each node's Python stack (an error
    points at the line of the forward that made it)."""

    def __init__(self) -> None:
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return _qualified(type(m)) in MODULES or super().is_leaf_module(m, module_qualified_name)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class _Recorder(fx.Interpreter):
    """Runs the traced graph, keeping every node's value (tensors, sizes, tuples)."""

    def __init__(self, module: fx.GraphModule):
        super().__init__(module)
        self.values: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        self.values[n] = value
        return value


# ops that act on each position alone: they may read a channels-last view and keep it one
PER_POSITION = {"relu", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "mish", "elu",
                "leaky_relu", "softplus", "dropout", "drop_path", "identity"}
LAYOUT_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze", "unsqueeze"}
LAYOUT_FUNCTIONS = {torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.squeeze, torch.unsqueeze}


def _compact(value: Any) -> Value:
    """A module setting as a spec writes it: (3, 3) -> 3, lists as tuples."""
    if isinstance(value, list | tuple):
        items = tuple(_compact(v) for v in value)
        return items[0] if items and all(v == items[0] for v in items) else items
    return value


class Importer:
    def __init__(self, model: nn.Module, inputs: dict[str, tuple[int, ...]], source: str, name: str):
        self.model, self.input_shapes, self.source, self.name = model.eval(), inputs, source, name
        self.calls: list[Call] = []
        self.notes: list[str] = []
        self.tensors: dict[fx.Node, str] = {}  # node -> tensor id, once emitted
        self.named_modules = dict(model.named_modules())
        self.ran: set[str] = set()  # modules that ran (the others are training-only parts)
        # channels-last views (ConvNeXt's permute to N, H, W, C): nodes whose value is the spec's channels-first
        # tensor with its channels moved last; only per-position layers may read them
        self.channels_last: set[fx.Node] = set()
        self.renamed: dict[str, str] = {}  # source state_dict key -> the spec's (a bare parameter as a layer)

    # -- tracing ------------------------------------------------------------------------------------------
    def trace(self) -> tuple[fx.Graph, dict[fx.Node, Any]]:
        tracer = _Tracer()
        try:
            graph = tracer.trace(self.model)
        except Exception as exc:  # fx's TraceError and whatever the model's forward raises on proxies
            raise SpecError([import_error(
                Code.E703, f"torch.fx cannot trace {self.source}: {type(exc).__name__}: {_first_line(exc)}",
                self.source, hint="control flow that depends on tensor values cannot be written as a spec; "
                "trace a module whose forward is a fixed graph")]) from None
        module = fx.GraphModule(tracer.root, graph)
        examples = [torch.rand(1, *shape) for shape in self.input_shapes.values()]
        recorder = _Recorder(module)
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        if len(placeholders) != len(examples):
            raise SpecError([import_error(
                Code.E705, f"{self.source}'s forward takes {len(placeholders)} inputs "
                f"({', '.join(n.target for n in placeholders)}); --input gave {len(examples)}", self.source,
                hint="give one --input NAME=SHAPE per argument of forward, in order")])
        try:
            with torch.no_grad():
                recorder.run(*examples)
        except Exception as exc:  # the model's own forward on the example: its message says what is wrong
            shapes = ", ".join(f"{name}={'x'.join(map(str, s))}" for name, s in self.input_shapes.items())
            raise SpecError([import_error(
                Code.E705, f"{self.source} does not run on {shapes}: {type(exc).__name__}: {_first_line(exc)}",
                self.source, hint="give the per-sample shapes forward expects, channels first (--input)")]) from None
        return graph, recorder.values

    def run(self) -> ImportedNetwork:
        graph, self.values = self.trace()
        inputs: list[Input] = []
        names = list(self.input_shapes)
        outputs: list[tuple[str, str]] = []
        for node in graph.nodes:
            if node.op == "placeholder":
                index = len(inputs)
                self.tensors[node] = names[index]
                inputs.append(Input(names[index], names[index], tuple(self.input_shapes[names[index]])))
            elif node.op == "output":
                results = _flatten_output(node.args[0])
                for i, result in enumerate(results):
                    outputs.append(("out" if len(results) == 1 else f"out{i + 1}", self.tensor(result)))
            elif node.op == "call_module":
                self.check_runs_once(node)
                self.ran.add(str(node.target))
                self.convert_module(node)
            elif node.op in ("call_function", "call_method"):
                self.convert_function(node)
            elif node.op == "get_attr":
                pass  # a parameter used by a function: refused where a function reads it
        self.note_unused()
        params = sum(p.numel() for name, p in self.model.named_parameters() if self._ran(name))
        return ImportedNetwork(self.name, self.source, "PyTorch", inputs, self.calls, outputs, self.notes, params)

    # -- tensors ------------------------------------------------------------------------------------------
    def tensor(self, node: Any) -> str:
        """The tensor id of `node`, emitting a pending reshape first."""
        if not isinstance(node, fx.Node):
            raise self.refuse(None, f"an output or input that is not a tensor ({node!r})")
        if node not in self.tensors:
            if _is_layout(node):
                self.emit_layout(node)
            else:
                raise self.refuse(node, "a value that is not a tensor the spec computes")
        return self.tensors[node]

    def emit(self, node: fx.Node, op: str, inputs: Sequence[Any], *, leaf: bool = False, **args: Value) -> None:
        scope, classes = self.scope_of(node, leaf)
        name = str(node.target).rsplit(".", 1)[-1] if leaf else None
        origin = f"{node.target} ({type(self.named_modules[str(node.target)]).__name__})" if leaf else \
            f"{'.'.join(scope) or self.source}: {_describe(node)}"
        output = node.name
        ids = tuple(self.tensor(n) for n in inputs)  # first: a pending permute may make a channels-last view
        viewed = [n for n in inputs if isinstance(n, fx.Node) and n in self.channels_last]
        if viewed:  # a channels-last view: per-position layers only, and they keep it channels-last
            if op not in PER_POSITION and args.get("over") != "channels":
                raise self.refuse(node, f"{op} on a channels-last view (a permuted tensor)", hint=LAYOUT_HINT)
            self.channels_last.add(node)
        call = op_call(op, ids, output, scope, classes, name, origin, **args)
        self.calls.append(call)
        self.tensors[node] = output

    def alias(self, node: fx.Node, source: Any) -> None:
        self.tensors[node] = self.tensor(source)

    def scope_of(self, node: fx.Node, leaf: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
        stack = list(node.meta.get("nn_module_stack", {}).values())
        paths = [str(path) for path, _ in stack]
        if leaf and paths and paths[-1] == node.target:
            paths = paths[:-1]
        if leaf:
            parent = str(node.target).rsplit(".", 1)[0] if "." in str(node.target) else ""
        else:
            parent = paths[-1] if paths else ""
        scope = tuple(parent.split(".")) if parent else ()
        classes = tuple(type(self.named_modules.get(".".join(scope[:k + 1]), nn.Module())).__name__
                        for k in range(len(scope)))
        return scope, classes

    def refuse(self, node: fx.Node | None, what: str, hint: str | None = None) -> SpecError:
        """E703 for `node`: named by its module path, located at the line of Python that made it (the
        traced forward's stack), else at the source's name."""
        where = ".".join(self.scope_of(node, node.op == "call_module")[0]) if node is not None else ""
        if node is not None and node.op == "call_module":
            where = str(node.target)
        file, line = _made_at(node)
        return SpecError([import_error(
            Code.E703, f"{where or 'the top-level forward'}: {what} cannot be written as a spec",
            file or self.source, line=line, excerpt=linecache.getline(file, line).rstrip() if file else "",
            hint=hint or "rewrite that part of the source with layers a spec has (docs/ops.md), or leave it out")])

    # -- modules ------------------------------------------------------------------------------------------
    def check_runs_once(self, node: fx.Node) -> None:
        """A module with weights that runs twice shares them between two places, which a spec cannot say
        (a module without weights, a ReLU called twice, is simply written twice)."""
        target = str(node.target)
        if target in self.ran and any(True for _ in self.named_modules[target].parameters()):
            outer = next((str(path).split("@")[0] for path in node.meta.get("nn_module_stack", {})
                          if "@" in str(path)), target)
            raise self.refuse(node, f"module {outer} runs twice, sharing its weights between two places: that",
                              hint="give each use its own module in the source")

    def convert_module(self, node: fx.Node) -> None:
        module = self.named_modules[str(node.target)]
        tensor_args = [a for a in node.args if isinstance(a, fx.Node)]
        if len(tensor_args) != 1 or node.kwargs:
            raise self.refuse(node, f"a {type(module).__name__} called with {len(tensor_args)} tensors")
        x = tensor_args[0]
        for cls in type(module).__mro__:
            converter = MODULES.get(cls) or MODULES.get(_qualified(cls))
            if converter is not None:
                converter(self, node, module, x)
                return
        raise self.refuse(node, f"the module {type(module).__module__}.{type(module).__qualname__}",
                          hint="a spec has the layers listed in docs/ops.md; write this module with them")

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        value = self.values[node]
        return tuple(value.shape[1:])

    # -- functions and methods ------------------------------------------------------------------------------
    def convert_function(self, node: fx.Node) -> None:
        value = self.values.get(node)
        if not _holds_tensor(value):
            return  # a size computation: its value is known, the nodes that use it read it from there
        if _is_layout(node):
            return  # emitted where a layer reads it (emit_layout)
        key = node.target if node.op == "call_function" else str(node.target).rstrip("_")
        handler = FUNCTIONS.get(key) if not isinstance(key, str) else METHODS.get(key)
        if handler is None and node.op == "call_method" and key in FUNCTION_METHODS:
            handler = FUNCTIONS.get(FUNCTION_METHODS[key])
        if handler is None:
            raise self.refuse(node, f"the call {_describe(node)}")
        handler(self, node)

    def arg(self, node: fx.Node, index: int, name: str, default: Any = None) -> Any:
        """A function's argument by position or keyword, as its value (size computations evaluated)."""
        raw = node.args[index] if index < len(node.args) else node.kwargs.get(name, default)
        return self.value(raw)

    def value(self, raw: Any) -> Any:
        if isinstance(raw, fx.Node):
            value = self.values[raw]
            return value if not isinstance(value, torch.Tensor) else raw
        if isinstance(raw, list | tuple):
            return type(raw)(self.value(v) for v in raw)
        return raw

    def emit_layout(self, node: fx.Node) -> None:
        """A run of reshapes, transposes and permutes, as the op it amounts to: found by applying the run to
        an index tensor and comparing with what flatten, reshape and channel_shuffle would give."""
        run: list[Any] = [node]
        while _is_layout(run[-1]):
            run.append(run[-1].args[0])
        source = run[-1]
        before = tuple(self.values[source].shape)
        probe = torch.from_numpy(index_array(before))
        for step in reversed(run[:-1]):
            probe = _apply_layout(self, step, probe)
        moved = _channels_moved(before, probe.numpy())
        if moved is not None and (moved == "last") != (source in self.channels_last):
            self.alias(node, source)  # to or from a channels-last view of the same tensor
            if moved == "last":
                self.channels_last.add(node)
            return
        found = layout_op(before, probe.numpy()) if source not in self.channels_last else None
        if found is None:
            steps = " -> ".join(_describe(n) for n in reversed(run[:-1]))
            raise self.refuse(node, f"a permutation of the axes ({steps})", hint=LAYOUT_HINT)
        op, args = found
        if op:
            self.emit(node, op, [source], **args)
        else:
            self.alias(node, source)

    def note_unused(self) -> None:
        """Modules with parameters that never ran on the example input: training-only parts (GoogLeNet's
        auxiliary classifiers), left out and said so, each by its outermost module that did not run."""
        for name, module in self.model.named_modules():
            if name and any(True for _ in module.parameters(recurse=False)) and name not in self.ran:
                outermost = next((p for p in _prefixes(name) if not self._touched(p)), name)
                note = f"{outermost} does not run in eval mode (a training-only part): left out"
                if note not in self.notes:
                    self.notes.append(note)

    def _touched(self, module: str) -> bool:
        """Whether `module` or a module inside it ran."""
        return module in self.ran or any(ran.startswith(module + ".") for ran in self.ran)

    def _ran(self, key: str) -> bool:
        """Whether the module owning the state_dict entry `key` ran."""
        return key.rsplit(".", 1)[0] in self.ran if "." in key else True

    def unused_keys(self) -> list[str]:
        """The state_dict keys of modules that did not run (what a strict load of the source's weights into
        the imported network leaves out)."""
        return [key for key in self.model.state_dict() if not self._ran(key)]


_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_TORCH_DIR = str(Path(torch.__file__).parent)


def _made_at(node: fx.Node | None) -> tuple[str, int]:
    """The file and line of the innermost frame of the forward that made `node` ("", 1 when unknown)."""
    frames = [(file, int(line)) for file, line in _FRAME.findall(node.stack_trace or "" if node is not None else "")
              if not file.startswith(_TORCH_DIR)]  # fx's own frames
    return frames[-1] if frames else ("", 1)


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts) + 1)]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _describe(node: fx.Node) -> str:
    target = node.target
    if node.op == "call_method":
        return f"Tensor.{target}"
    name = getattr(target, "__name__", str(target))
    module = getattr(target, "__module__", "") or ""
    if module.startswith("torch.nn.functional"):
        return f"F.{name}"
    if module.startswith("torch"):
        return f"torch.{name}"
    return f"{module}.{name}" if module and module != "_operator" else name


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, list | tuple) and any(isinstance(v, torch.Tensor) for v in value)


def _is_layout(node: Any) -> bool:
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method":
        return node.target in LAYOUT_METHODS
    return node.op == "call_function" and node.target in LAYOUT_FUNCTIONS


def _apply_layout(importer: Importer, node: fx.Node, probe: torch.Tensor) -> torch.Tensor:
    """`node`'s reshape or permutation applied to `probe` (its arguments evaluated from the recorded run)."""
    name = node.target if node.op == "call_method" else node.target.__name__  # type: ignore[union-attr]
    args = [importer.value(a) for a in node.args[1:]]
    kwargs = {k: importer.value(v) for k, v in node.kwargs.items()}
    if name == "view":
        name = "reshape"
    return getattr(probe, str(name))(*args, **kwargs)


def _channels_moved(before: tuple[int, ...], probe: Any) -> str | None:
    """"last" when `probe` is the index array moved to channels-last (N, C, ... -> N, ..., C), "first" for the
    way back, else None."""
    import numpy as np

    index = index_array(before)
    rank = len(before)
    if rank < 3:
        return None
    if np.array_equal(np.moveaxis(index, 1, -1), probe):
        return "last"
    if np.array_equal(np.moveaxis(index, -1, 1), probe):
        return "first"
    return None


def _flatten_output(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [v for item in value for v in _flatten_output(item)]
    if isinstance(value, dict):
        return [v for item in value.values() for v in _flatten_output(item)]
    return [value]


# ---- module converters -------------------------------------------------------------------------------------
ModuleConverter = Callable[[Importer, fx.Node, Any, fx.Node], None]


def _conv(importer: Importer, node: fx.Node, m: nn.Conv2d, x: fx.Node) -> None:
    if m.padding_mode != "zeros":
        raise importer.refuse(node, f"padding_mode={m.padding_mode!r}", hint="a spec's convolutions pad with zeros")
    importer.emit(node, "conv", [x], leaf=True, channels=m.out_channels, kernel=_compact(m.kernel_size),
                  stride=_compact(m.stride), padding=_compact(m.padding), dilation=_compact(m.dilation),
                  groups=m.groups, bias=m.bias is not None)


def _conv_transpose(importer: Importer, node: fx.Node, m: nn.ConvTranspose2d, x: fx.Node) -> None:
    importer.emit(node, "conv_transpose", [x], leaf=True, channels=m.out_channels, kernel=_compact(m.kernel_size),
                  stride=_compact(m.stride), padding=_compact(m.padding), output_padding=_compact(m.output_padding),
                  dilation=_compact(m.dilation), groups=m.groups, bias=m.bias is not None)


def _batchnorm(importer: Importer, node: fx.Node, m: nn.BatchNorm2d, x: fx.Node) -> None:
    if not m.track_running_stats:
        raise importer.refuse(node, "batch norm without running statistics (it normalises by the batch at inference)")
    importer.emit(node, "batchnorm", [x], leaf=True, eps=m.eps, momentum=m.momentum if m.momentum is not None else 0.1,
                  affine=m.affine)


def _linear(importer: Importer, node: fx.Node, m: nn.Linear, x: fx.Node) -> None:
    importer.tensor(x)  # a pending permute resolved: is it a channels-last view?
    if x in importer.channels_last:  # per position over the channels (ConvNeXt's MLP)
        importer.emit(node, "linear", [x], leaf=True, features=m.out_features, bias=m.bias is not None,
                      over="channels")
        return
    if len(importer.shape(x)) != 1:
        raise importer.refuse(node, f"a Linear over the last axis of a {len(importer.shape(x)) + 1}-d tensor",
                              hint="a spec's linear reads a flat vector: flatten before it")
    importer.emit(node, "linear", [x], leaf=True, features=m.out_features, bias=m.bias is not None)


def _layernorm(importer: Importer, node: fx.Node, m: nn.LayerNorm, x: fx.Node) -> None:
    """Over the channels of a channels-last view (ConvNeXt's blocks): a spec's layernorm over channels."""
    channels = importer.shape(x)[-1]
    importer.tensor(x)  # a pending permute resolved: is it a channels-last view?
    if x not in importer.channels_last or tuple(m.normalized_shape) != (channels,):
        raise importer.refuse(node, f"a LayerNorm over {tuple(m.normalized_shape)} of a token or image axis",
                              hint="a spec normalises over the channels (layernorm(over=channels)) or all axes")
    importer.emit(node, "layernorm", [x], leaf=True, over="channels", eps=float(m.eps), affine=m.elementwise_affine)


def _maxpool(importer: Importer, node: fx.Node, m: nn.MaxPool2d, x: fx.Node) -> None:
    if m.return_indices:
        raise importer.refuse(node, "max pooling that returns its indices")
    importer.emit(node, "maxpool", [x], leaf=True, kernel=_compact(m.kernel_size), stride=_stride(m),
                  padding=_compact(m.padding), dilation=_compact(m.dilation), ceil=m.ceil_mode)


def _avgpool(importer: Importer, node: fx.Node, m: nn.AvgPool2d, x: fx.Node) -> None:
    if m.divisor_override is not None:
        raise importer.refuse(node, "average pooling with divisor_override")
    importer.emit(node, "avgpool", [x], leaf=True, kernel=_compact(m.kernel_size), stride=_stride(m),
                  padding=_compact(m.padding), ceil=m.ceil_mode, count_include_pad=m.count_include_pad)


def _stride(m: Any) -> Value:
    """A pooling's stride, left out (None, the op's default) where it equals the kernel, as written."""
    stride = _compact(m.stride)
    return None if stride == _compact(m.kernel_size) else stride


def _adaptive(op: str, global_op: str) -> ModuleConverter:
    def convert(importer: Importer, node: fx.Node, m: Any, x: fx.Node) -> None:
        out = importer.shape(node)[1:]
        if all(size == 1 for size in out):
            importer.emit(node, global_op, [x], leaf=True)
        else:
            importer.emit(node, op, [x], leaf=True, size=_compact(out))
    return convert


def _simple(op: str, **settings: Callable[[Any], Value]) -> ModuleConverter:
    def convert(importer: Importer, node: fx.Node, m: Any, x: fx.Node) -> None:
        importer.emit(node, op, [x], leaf=True, **{name: read(m) for name, read in settings.items()})
    return convert


def _identity(importer: Importer, node: fx.Node, m: Any, x: fx.Node) -> None:
    importer.alias(node, x)


def _softmax(importer: Importer, node: fx.Node, m: nn.Softmax, x: fx.Node) -> None:
    dim = _sample_axis(m.dim, len(importer.shape(x)) + 1)
    if dim is None:
        raise importer.refuse(node, "a softmax over the batch axis")
    importer.emit(node, "softmax", [x], leaf=True, dim=dim)


def _flatten_module(importer: Importer, node: fx.Node, m: nn.Flatten, x: fx.Node) -> None:
    if (m.start_dim, m.end_dim) != (1, -1):
        raise importer.refuse(node, f"Flatten({m.start_dim}, {m.end_dim})", hint="a spec flattens all but the batch")
    importer.emit(node, "flatten", [x], leaf=True)


def _upsample(importer: Importer, node: fx.Node, m: nn.Upsample, x: fx.Node) -> None:
    mode = m.mode if m.mode in ("nearest", "bilinear", "bicubic", "linear", "trilinear") else None
    if mode is None:
        raise importer.refuse(node, f"up-sampling mode {m.mode!r}")
    align = bool(m.align_corners) if m.align_corners is not None else False
    if m.scale_factor is not None:
        importer.emit(node, "upsample", [x], leaf=True, scale=_compact(m.scale_factor), mode=mode, align_corners=align)
    else:
        importer.emit(node, "upsample", [x], leaf=True, size=_compact(importer.shape(node)[1:]), mode=mode,
                      align_corners=align)


def _sample_axis(dim: int | None, rank: int) -> int | None:
    """A batched tensor's axis as the per-sample axis a spec writes (channels are 0); None for the batch."""
    if dim is None:
        return None
    dim = dim + rank if dim < 0 else dim
    return dim - 1 if dim >= 1 else None


MODULES: dict[Any, ModuleConverter] = {
    nn.modules.conv._ConvTransposeNd: _conv_transpose,
    nn.modules.conv._ConvNd: _conv,
    nn.modules.batchnorm._BatchNorm: _batchnorm,
    nn.Linear: _linear,
    nn.MaxPool1d: _maxpool, nn.MaxPool2d: _maxpool, nn.MaxPool3d: _maxpool,
    nn.AvgPool1d: _avgpool, nn.AvgPool2d: _avgpool, nn.AvgPool3d: _avgpool,
    nn.AdaptiveAvgPool1d: _adaptive("adaptive_avgpool", "global_avgpool"),
    nn.AdaptiveAvgPool2d: _adaptive("adaptive_avgpool", "global_avgpool"),
    nn.AdaptiveAvgPool3d: _adaptive("adaptive_avgpool", "global_avgpool"),
    nn.AdaptiveMaxPool1d: _adaptive("adaptive_maxpool", "global_maxpool"),
    nn.AdaptiveMaxPool2d: _adaptive("adaptive_maxpool", "global_maxpool"),
    nn.AdaptiveMaxPool3d: _adaptive("adaptive_maxpool", "global_maxpool"),
    nn.ReLU: _simple("relu"), nn.ReLU6: _simple("relu6"), nn.Sigmoid: _simple("sigmoid"), nn.Tanh: _simple("tanh"),
    nn.SiLU: _simple("silu"), nn.Hardswish: _simple("hardswish"), nn.Hardsigmoid: _simple("hardsigmoid"),
    nn.Mish: _simple("mish"), nn.ELU: _simple("elu", alpha=lambda m: float(m.alpha)),
    nn.GELU: _simple("gelu", approximate=lambda m: m.approximate == "tanh"),
    nn.LeakyReLU: _simple("leaky_relu", slope=lambda m: float(m.negative_slope)),
    nn.Softplus: _simple("softplus", beta=lambda m: float(m.beta), threshold=lambda m: float(m.threshold)),
    nn.PReLU: _simple("prelu", per_channel=lambda m: m.num_parameters > 1, init=lambda m: float(m.init)),
    nn.Softmax: _softmax,
    nn.Dropout: _simple("dropout", p=lambda m: float(m.p)), nn.Dropout1d: _simple("dropout", p=lambda m: float(m.p)),
    nn.Dropout2d: _simple("dropout", p=lambda m: float(m.p)), nn.Dropout3d: _simple("dropout", p=lambda m: float(m.p)),
    nn.AlphaDropout: _simple("dropout", p=lambda m: float(m.p)),
    nn.Identity: _identity,
    nn.Flatten: _flatten_module,
    nn.LocalResponseNorm: _simple("lrn", size=lambda m: m.size, alpha=lambda m: float(m.alpha),
                                  beta=lambda m: float(m.beta), k=lambda m: float(m.k)),
    nn.LayerNorm: _layernorm,
    nn.GroupNorm: _simple("groupnorm", groups=lambda m: m.num_groups, eps=lambda m: float(m.eps),
                          affine=lambda m: m.affine),
    nn.Upsample: _upsample,
    nn.PixelShuffle: _simple("pixel_shuffle", factor=lambda m: m.upscale_factor),
    nn.PixelUnshuffle: _simple("pixel_unshuffle", factor=lambda m: m.downscale_factor),
    nn.ChannelShuffle: _simple("channel_shuffle", groups=lambda m: m.groups),
    # torchvision's stochastic depth, named rather than imported (torchvision is not a dependency)
    "torchvision.ops.stochastic_depth.StochasticDepth": _simple("drop_path", p=lambda m: float(m.p)),
    "torchvision.ops.misc.FrozenBatchNorm2d": _simple("frozen_batchnorm", eps=lambda m: float(m.eps)),
    "torchvision.models.convnext.LayerNorm2d": _simple(
        "layernorm", over=lambda m: "channels", eps=lambda m: float(m.eps), affine=lambda m: m.elementwise_affine),
}


# ---- function and method converters ----------------------------------------------------------------------
FunctionConverter = Callable[[Importer, fx.Node], None]


def _unary(op: str, **settings: Callable[[Importer, fx.Node], Value]) -> FunctionConverter:
    def convert(importer: Importer, node: fx.Node) -> None:
        importer.emit(node, op, [node.args[0]], **{k: read(importer, node) for k, read in settings.items()})
    return convert


def _binary(op: str) -> FunctionConverter:
    def convert(importer: Importer, node: fx.Node) -> None:
        operands = [a for a in node.args[:2]]
        parameters = [a for a in operands if isinstance(a, fx.Node) and a.op == "get_attr"]
        if op == "mul" and len(parameters) == 1:
            _layer_scale(importer, node, parameters[0], next(a for a in operands if a is not parameters[0]))
            return
        if not all(isinstance(a, fx.Node) and isinstance(importer.values[a], torch.Tensor) for a in operands):
            raise importer.refuse(node, f"{_describe(node)} with a constant ({operands[1]!r})",
                                  hint="a spec's add and mul combine two tensors; a constant factor is a layer's "
                                  "weight in the source (scale)")
        if node.kwargs.get("alpha", 1) != 1:
            raise importer.refuse(node, f"{_describe(node)} with alpha")
        importer.emit(node, op, operands)
    return convert


def _layer_scale(importer: Importer, node: fx.Node, parameter: fx.Node, x: Any) -> None:
    """A module's own parameter of shape (C, 1, ...) times a tensor: a spec's `scale` layer named after the
    parameter (ConvNeXt's layer_scale), whose weight is the parameter (its state_dict key gains `.weight`)."""
    value = importer.values[parameter]
    shape = tuple(importer.values[x].shape[1:])
    if not isinstance(x, fx.Node) or tuple(value.shape) != (shape[0], *([1] * (len(shape) - 1))):
        raise importer.refuse(node, f"a product with the parameter {parameter.target} of shape {tuple(value.shape)}",
                              hint="a spec multiplies by a learned per-channel scale (scale) only")
    target = str(parameter.target)
    owner, _, attribute = target.rpartition(".")
    scope = tuple(owner.split(".")) if owner else ()
    classes = tuple(type(importer.named_modules.get(".".join(scope[:k + 1]), nn.Module())).__name__
                    for k in range(len(scope)))
    importer.calls.append(op_call("scale", (importer.tensor(x),), node.name, scope, classes, attribute,
                                  f"{target} (a parameter)"))
    importer.tensors[node] = node.name
    importer.renamed[target] = f"{target}.weight"
    importer.ran.add(owner)  # its parameter is used: the module's weights are the spec's


def _cat(importer: Importer, node: fx.Node) -> None:
    tensors = importer.arg(node, 0, "tensors")
    if len(tensors) == 1:  # DenseNet's first layer concatenates a list of one
        importer.alias(node, tensors[0])
        return
    dim = importer.arg(node, 1, "dim", 0)
    rank = importer.values[node].dim()
    axis = _sample_axis(dim, rank)
    if axis is None:
        raise importer.refuse(node, "a concatenation along the batch")
    importer.emit(node, "concat", list(tensors), dim=axis)


def _adaptive_function(op: str, global_op: str) -> FunctionConverter:
    def convert(importer: Importer, node: fx.Node) -> None:
        out = tuple(importer.values[node].shape[2:])
        if all(size == 1 for size in out):
            importer.emit(node, global_op, [node.args[0]])
        else:
            importer.emit(node, op, [node.args[0]], size=_compact(out))
    return convert


def _mean(importer: Importer, node: fx.Node) -> None:
    """`x.mean((2, 3))`, MNASNet's and others' global pooling: global_avgpool, flattened unless keepdim."""
    x: Any = node.args[0]
    dims = importer.arg(node, 1, "dim")
    keep = importer.arg(node, 2, "keepdim", False)
    rank = importer.values[x].dim()
    spatial = set(range(2, rank))
    if not isinstance(dims, list | tuple) or {d + rank if d < 0 else d for d in dims} != spatial:
        raise importer.refuse(node, f"a mean over axes {dims}", hint="a spec averages over all spatial axes at once")
    if keep:
        importer.emit(node, "global_avgpool", [x])
        return
    pooled = f"{node.name}_pooled"
    scope, classes = importer.scope_of(node, False)
    importer.calls.append(op_call("global_avgpool", (importer.tensor(x),), pooled, scope, classes,
                                  origin=_describe(node)))
    importer.calls.append(op_call("flatten", (pooled,), node.name, scope, classes, origin=_describe(node)))
    importer.tensors[node] = node.name


def _pool_function(op: str) -> FunctionConverter:
    def convert(importer: Importer, node: fx.Node) -> None:
        kernel = importer.arg(node, 1, "kernel_size")
        stride = importer.arg(node, 2, "stride") or kernel
        stride = None if _compact(stride) == _compact(kernel) else stride
        padding = importer.arg(node, 3, "padding", 0)
        if op == "maxpool":
            importer.emit(node, op, [node.args[0]], kernel=_compact(kernel), stride=_compact(stride),
                          padding=_compact(padding), dilation=_compact(importer.arg(node, 4, "dilation", 1)),
                          ceil=bool(importer.arg(node, 5, "ceil_mode", False)))
        else:
            importer.emit(node, op, [node.args[0]], kernel=_compact(kernel), stride=_compact(stride),
                          padding=_compact(padding), ceil=bool(importer.arg(node, 4, "ceil_mode", False)),
                          count_include_pad=bool(importer.arg(node, 5, "count_include_pad", True)))
    return convert


def _dropout(importer: Importer, node: fx.Node) -> None:
    importer.emit(node, "dropout", [node.args[0]], p=float(importer.arg(node, 1, "p", 0.5)))


def _chunk(importer: Importer, node: fx.Node) -> None:
    """chunk and split make a tuple; each item read later (operator.getitem) becomes a slice."""


def _getitem(importer: Importer, node: fx.Node) -> None:
    source, index = node.args
    if not (isinstance(source, fx.Node) and isinstance(importer.values[source], tuple | list)):
        raise importer.refuse(node, "indexing into a tensor", hint="a spec slices channels with slice(start, stop)")
    parts = importer.values[source]
    if source.target not in (torch.chunk, torch.split, "chunk", "split"):
        raise importer.refuse(node, f"an item of {_describe(source)}")
    dim = importer.arg(source, 2, "dim", 0)
    rank = parts[0].dim()
    axis = _sample_axis(dim, rank)
    if axis is None:
        raise importer.refuse(node, "a split of the batch")
    start = sum(int(p.shape[dim]) for p in parts[:index])
    stop = start + int(parts[index].shape[dim])
    importer.emit(node, "slice", [source.args[0]], start=start, stop=stop, dim=axis)


def _interpolate(importer: Importer, node: fx.Node) -> None:
    mode = importer.arg(node, 3, "mode", "nearest")
    align = importer.arg(node, 4, "align_corners", None)
    size = importer.arg(node, 1, "size")
    scale = importer.arg(node, 2, "scale_factor")
    common = {"mode": mode, "align_corners": bool(align) if align is not None else False}
    if scale is not None:
        importer.emit(node, "upsample", [node.args[0]], scale=_compact(scale), **common)
    else:
        importer.emit(node, "upsample", [node.args[0]], size=_compact(size), **common)


def _passthrough(importer: Importer, node: fx.Node) -> None:
    importer.alias(node, node.args[0])


def _float(read: str, index: int, default: float) -> Callable[[Importer, fx.Node], Value]:
    return lambda importer, node: float(importer.arg(node, index, read, default))


def _softmax_function(importer: Importer, node: fx.Node) -> None:
    dim = _sample_axis(importer.arg(node, 1, "dim"), importer.values[node].dim())
    if dim is None:
        raise importer.refuse(node, "a softmax over the batch axis (or with no dim)")
    importer.emit(node, "softmax", [node.args[0]], dim=dim)


FUNCTIONS: dict[Any, FunctionConverter] = {
    F.relu: _unary("relu"), torch.relu: _unary("relu"), F.relu6: _unary("relu6"), F.silu: _unary("silu"),
    torch.sigmoid: _unary("sigmoid"), F.sigmoid: _unary("sigmoid"), torch.tanh: _unary("tanh"), F.tanh: _unary("tanh"),
    F.hardswish: _unary("hardswish"), F.hardsigmoid: _unary("hardsigmoid"), F.mish: _unary("mish"),
    F.gelu: _unary("gelu", approximate=lambda importer, node: node.kwargs.get("approximate", "none") == "tanh"),
    F.leaky_relu: _unary("leaky_relu", slope=_float("negative_slope", 1, 0.01)),
    F.elu: _unary("elu", alpha=_float("alpha", 1, 1.0)),
    F.softmax: _softmax_function, torch.softmax: _softmax_function,
    operator.add: _binary("add"), operator.iadd: _binary("add"), torch.add: _binary("add"),
    operator.mul: _binary("mul"), operator.imul: _binary("mul"), torch.mul: _binary("mul"),
    torch.cat: _cat, torch.concat: _cat,
    F.adaptive_avg_pool2d: _adaptive_function("adaptive_avgpool", "global_avgpool"),
    F.adaptive_avg_pool1d: _adaptive_function("adaptive_avgpool", "global_avgpool"),
    F.adaptive_max_pool2d: _adaptive_function("adaptive_maxpool", "global_maxpool"),
    F.max_pool2d: _pool_function("maxpool"), F.avg_pool2d: _pool_function("avgpool"),
    torch.mean: _mean,
    F.dropout: _dropout, torch.dropout: _dropout,
    torch.chunk: _chunk, torch.split: _chunk, operator.getitem: _getitem,
    F.interpolate: _interpolate,
    torch.clone: _passthrough,
}
METHODS: dict[str, FunctionConverter] = {"mean": _mean, "chunk": _chunk, "split": _chunk, "clone": _passthrough,
                                         "add": _binary("add"), "mul": _binary("mul")}
FUNCTION_METHODS: dict[str, Any] = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                                    "softmax": F.softmax}


def parse_inputs(given: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """`--input image=3x224x224` values as {name: per-sample shape}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in given:
        name, _, shape = text.partition("=")
        try:
            dims = tuple(int(d) for d in shape.lower().replace(" ", "").split("x"))
        except ValueError:
            dims = ()
        if not name.isidentifier() or not dims or any(d <= 0 for d in dims):
            raise SpecError([import_error(Code.E705, f"--input {text!r} is not NAME=SHAPE", "--input",
                                          hint="e.g. --input image=3x224x224 (the shape per sample, channels first)")])
        shapes[name] = dims
    if not shapes:
        raise SpecError([import_error(Code.E705, "tracing needs the input's shape", "--input",
                                      hint="give --input NAME=SHAPE, e.g. --input image=3x224x224")])
    return shapes


def import_module(model: nn.Module, inputs: dict[str, tuple[int, ...]], source: str, name: str) -> ImportedNetwork:
    """The imported form of `model` at per-sample input shapes `inputs`."""
    return Importer(model, inputs, source, name).run()


def training_only_keys(model: nn.Module, inputs: dict[str, tuple[int, ...]]) -> list[str]:
    importer = Importer(model, inputs, "", "")
    importer.run()
    return importer.unused_keys()
