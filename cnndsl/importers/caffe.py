"""Caffe `.prototxt` -> .cnn: `cnndsl import caffe deploy.prototxt -o net.cnn`.

The text format is read with a small grammar (protobuf's text format: `key: value` and `key { ... }`),
so no protobuf schema or Caffe install is needed, and every value keeps its line and column for errors.
Both layer syntaxes are read: `layer { type: "Convolution" }` and the V1 `layers { type: CONVOLUTION }`;
inputs from `input:` with `input_shape { dim: ... }` or `input_dim:`, or an `Input` layer.

Caffe's pooling rounds the output size up (`ceil`), where PyTorch's default rounds down: the spec's
pooling says `ceil=true`, which has Caffe's rule (a window that would start in the padding is dropped).
`BatchNorm` followed by `Scale` is one `batchnorm` with its affine parameters; layers with blobs named
in place (`top` equal to `bottom`) read and write the blob's latest value. Training-only layers (losses,
accuracy, data layers, `include { phase: TRAIN }`) are left out with a note.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lark import Lark, Token, Tree, UnexpectedEOF, UnexpectedInput

from ..diagnostics import Code, Diagnostic, Location, SpecError
from ..syntax.source import SourceFile, read_source
from .network import Call, ImportedNetwork, Input, Value, layer_name, op_call

GRAMMAR = r"""
start: _item*
_item: field | message
field: NAME ":" value ","? ";"?
message: NAME ":"? "{" _item* "}" ","? ";"?
value: STRING | SIGNED_NUMBER | NAME
STRING: /"(\\.|[^"\\])*"/ | /'(\\.|[^'\\])*'/
NAME: /[A-Za-z_][A-Za-z_0-9.]*/
SIGNED_NUMBER: /[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/
COMMENT: /#[^\n]*/
%ignore COMMENT
%ignore /\s+/
"""

# V1 (`layers { type: CONVOLUTION }`) enum names -> the current type names
V1_TYPES = {"CONVOLUTION": "Convolution", "POOLING": "Pooling", "INNER_PRODUCT": "InnerProduct", "RELU": "ReLU",
            "LRN": "LRN", "CONCAT": "Concat", "ELTWISE": "Eltwise", "DROPOUT": "Dropout", "SOFTMAX": "Softmax",
            "SIGMOID": "Sigmoid", "TANH": "TanH", "DECONVOLUTION": "Deconvolution", "SPLIT": "Split",
            "FLATTEN": "Flatten", "SOFTMAX_LOSS": "SoftmaxWithLoss", "ACCURACY": "Accuracy", "DATA": "Data"}
KEEPS_SHAPE = {"relu", "leaky_relu", "sigmoid", "tanh", "elu", "dropout", "softmax", "add", "mul"}
TRAINING_ONLY = {"SoftmaxWithLoss", "Accuracy", "Data", "ImageData", "HDF5Data", "MemoryData", "EuclideanLoss",
                 "SigmoidCrossEntropyLoss", "WindowData", "DummyData", "Silence", "HingeLoss", "InfogainLoss"}


@dataclass
class Scalar:
    """A scalar of the file with where it is."""

    text: str
    line: int
    col: int

    def number(self) -> float:
        return float(self.text)

    def integer(self) -> int:
        return int(float(self.text))

    def string(self) -> str:
        return self.text[1:-1] if self.text[:1] in "\"'" else self.text


@dataclass
class Message:
    """A `{ ... }` block: its scalars and sub-messages by key (keys repeat: lists)."""

    line: int
    col: int
    fields: dict[str, list[Scalar]] = field(default_factory=dict)
    messages: dict[str, list[Message]] = field(default_factory=dict)

    def get(self, key: str) -> Scalar | None:
        values = self.fields.get(key)
        return values[-1] if values else None

    def text(self, key: str, default: str) -> str:
        value = self.get(key)
        return value.string() if value is not None else default

    def integer(self, key: str, default: int) -> int:
        value = self.get(key)
        return value.integer() if value is not None else default

    def all(self, key: str) -> list[Scalar]:
        return self.fields.get(key, [])

    def message(self, key: str) -> Message | None:
        found = self.messages.get(key)
        return found[-1] if found else None


def parse_prototxt(source: SourceFile) -> Message:
    try:
        tree = Lark(GRAMMAR, parser="lalr").parse(source.text)
    except UnexpectedInput as exc:
        line, col = max(exc.line, 1), max(exc.column, 1)
        at_end = isinstance(exc, UnexpectedEOF) or getattr(getattr(exc, "token", None), "type", "") == "$END"
        message = "the file ends before a `}` closes the block open here" if at_end else \
            "not Caffe's text format here"
        raise SpecError([Diagnostic(Code.E700, message, Location(source.path, line, col),
                                    "a prototxt holds `key: value` and `key { ... }` entries",
                                    excerpt=source.line(line))]) from None
    return _message(tree, 1, 1)


def _message(tree: Tree[Token], line: int, col: int) -> Message:
    result = Message(line, col)
    for child in tree.children:
        if not isinstance(child, Tree):
            continue
        key = child.children[0]
        assert isinstance(key, Token)
        if child.data == "field":
            value = child.children[1]
            assert isinstance(value, Tree)
            token = value.children[0]
            assert isinstance(token, Token)
            result.fields.setdefault(str(key), []).append(Scalar(str(token), token.line or 1, token.column or 1))
        else:
            sub = Tree("start", child.children[1:])
            result.messages.setdefault(str(key), []).append(_message(sub, key.line or 1, key.column or 1))
    return result


class CaffeImporter:
    def __init__(self, source: SourceFile, name: str):
        self.source, self.name = source, name
        self.errors: list[Diagnostic] = []
        self.calls: list[Call] = []
        self.notes: list[str] = []
        self.blobs: dict[str, str] = {}  # blob name -> current tensor id (in-place layers update it)
        self.count = 0
        self.layer_inputs: list[Input] = []  # inputs declared by `Input` layers
        self.flat: set[str] = set()  # tensors known to be vectors (an InnerProduct's, and what keeps them so)

    def error(self, where: Message | Scalar, code: Code, message: str, hint: str | None = None) -> None:
        self.errors.append(Diagnostic(code, message, Location(self.source.path, where.line, where.col), hint,
                                      excerpt=self.source.line(where.line)))

    def run(self) -> ImportedNetwork:
        root = parse_prototxt(self.source)
        inputs = self.inputs(root)
        layers = root.messages.get("layer", []) + root.messages.get("layers", [])
        layers.sort(key=lambda m: (m.line, m.col))
        for layer in layers:
            self.layer(layer)
        inputs += self.layer_inputs
        if not inputs:
            self.error(root, Code.E701, "the prototxt declares no input",
                       'add input: "data" with input_shape { dim: 1 dim: 3 dim: 224 dim: 224 }')
        if self.errors:
            raise SpecError(sorted(self.errors, key=_position))
        read = {t for call in self.calls for t in call.inputs}
        given = {i.tensor for i in inputs}
        outputs = [(layer_name(blob), tensor) for blob, tensor in dict.fromkeys(self.blobs.items())
                   if tensor not in read and tensor not in given]
        # a prototxt holds no weights: there is no count of the source's to compare with
        return ImportedNetwork(self.name, Path(self.source.path).name, "Caffe", inputs, self.calls, outputs,
                               self.notes, None)

    def inputs(self, root: Message) -> list[Input]:
        names = [v.string() for v in root.all("input")]
        shapes = [[d.integer() for d in m.all("dim")] for m in root.messages.get("input_shape", [])]
        dims = [d.integer() for d in root.all("input_dim")]
        if dims:
            shapes = [dims[i:i + 4] for i in range(0, len(dims), 4)]
        found = []
        for name, shape in zip(names, shapes, strict=False):
            found.append(self.input(name, shape, root))
        if len(shapes) < len(names):
            self.error(root.get("input") or root, Code.E701, "an input without a shape",
                       "give each input an input_shape { dim: N dim: C dim: H dim: W } or four input_dim")
        return found

    def input(self, name: str, shape: list[int], where: Message) -> Input:
        if len(shape) < 2 or any(d <= 0 for d in shape):
            self.error(where, Code.E701, f"input {name} has shape {shape}", "dims are N, C, H, W: positive")
        tensor = f"blob_{layer_name(name)}"
        self.blobs[name] = tensor
        return Input(tensor, layer_name(name) if layer_name(name) not in ("in", "x") else f"{name}_",
                     tuple(shape[1:]))

    # -- layers ----------------------------------------------------------------------------------------------
    def layer(self, layer: Message) -> None:
        kind_value = layer.get("type")
        name_value = layer.get("name")
        if kind_value is None:
            self.error(layer, Code.E700, "a layer without a type", "every layer has type: \"Convolution\" or such")
            return
        kind = V1_TYPES.get(kind_value.string(), kind_value.string())
        name = name_value.string() if name_value else f"layer{len(self.calls)}"
        phases = [m.get("phase") for m in layer.messages.get("include", [])]
        if any(p is not None and p.string() == "TRAIN" for p in phases):
            self.notes.append(f"layer {name} ({kind}) runs in training only: left out")
            return
        if kind in TRAINING_ONLY:
            self.notes.append(f"layer {name} ({kind}) belongs to training: left out")
            return
        if kind == "Input":
            shape_message = (layer.message("input_param") or Message(0, 0)).message("shape")
            dims = [d.integer() for d in shape_message.all("dim")] if shape_message else []
            for top in layer.all("top"):
                self.layer_inputs.append(self.input(top.string(), dims, layer))
            return
        converter = LAYERS.get(kind)
        if converter is None:
            self.error(kind_value, Code.E703, f"layer {name}: Caffe's {kind} layer cannot be written as a spec",
                       "a spec has the layers listed in docs/ops.md")
            return
        bottoms = [b.string() for b in layer.all("bottom")]
        missing = [b for b in bottoms if b not in self.blobs]
        if missing:
            self.error(layer.all("bottom")[bottoms.index(missing[0])], Code.E702,
                       f"layer {name} reads blob {missing[0]}, which no earlier layer or input makes",
                       "name a blob an earlier layer writes as its top")
            return
        converter(self, layer, name, bottoms)

    def emit(self, layer: Message, name: str, op: str, bottoms: list[str], top: str | None = None,
             named: bool = True, **args: Value) -> None:
        tops = [t.string() for t in layer.all("top")]
        top = top or (tops[0] if tops else name)
        self.count += 1
        output = f"t{self.count}_{layer_name(top)}"
        inputs = tuple(self.blobs[b] for b in bottoms)
        scope, leaf = _scoped(name)
        try:
            call = op_call(op, inputs, output, scope, tuple(_module_class(part) for part in scope),
                           layer_name(leaf) if named else None, f"{self.source.path}:{layer.line}: layer {name}",
                           **args)
        except KeyError as exc:  # an argument the op does not take: a bug in a converter
            raise AssertionError(str(exc)) from None
        self.calls.append(call)
        self.blobs[top] = output
        if op in ("linear", "flatten") or (op in KEEPS_SHAPE and all(i in self.flat for i in inputs)):
            self.flat.add(output)

    def param(self, layer: Message, key: str) -> Message:
        return layer.message(key) or Message(layer.line, layer.col)


def _scoped(name: str) -> tuple[tuple[str, ...], str]:
    """A layer name's module path, Caffe's `/` convention (`inception_3a/1x1`: layer `1x1` of module
    `inception_3a`), so that GoogLeNet's nine inception modules read as one block."""
    *scope, leaf = name.split("/")
    return tuple(layer_name(part) for part in scope if part), leaf


def _module_class(part: str) -> str:
    """The class a module path part stands for: its name without the index (`inception_3a` -> inception)."""
    return re.sub(r"_?\d+[a-z]?$", "", part) or part


def _position(diagnostic: Diagnostic) -> tuple[int, int]:
    where = diagnostic.location
    return (where.line, where.col) if where else (0, 0)


def _pair(params: Message, key: str, h: str, w: str, default: int | None) -> Value:
    """Caffe's `kernel_size` (one or one per axis) or `kernel_h`/`kernel_w`, as one value or an (h, w) pair."""
    if params.get(h) is not None or params.get(w) is not None:
        hv = params.get(h)
        wv = params.get(w)
        pair = (hv.integer() if hv else default, wv.integer() if wv else default)
        return pair[0] if pair[0] == pair[1] else pair  # type: ignore[return-value]
    values = [v.integer() for v in params.all(key)]
    if not values:
        return default
    return values[0] if len(values) == 1 or all(v == values[0] for v in values) else tuple(values)


def _conv(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    p = importer.param(layer, "convolution_param")
    outputs = p.get("num_output")
    kernel = _pair(p, "kernel_size", "kernel_h", "kernel_w", None)
    if outputs is None or kernel is None:
        importer.error(p, Code.E701, f"layer {name}: a convolution needs num_output and kernel_size")
        return
    bias = p.get("bias_term")
    args: dict[str, Value] = {
        "channels": outputs.integer(), "kernel": kernel, "stride": _pair(p, "stride", "stride_h", "stride_w", 1),
        "padding": _pair(p, "pad", "pad_h", "pad_w", 0), "dilation": _pair(p, "dilation", "", "", 1),
        "groups": p.integer("group", 1), "bias": bias is None or bias.string() == "true"}
    op = "conv_transpose" if "DECONV" in layer.text("type", "").upper() else "conv"
    importer.emit(layer, name, op, bottoms, **args)


def _pool(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    p = importer.param(layer, "pooling_param")
    method = p.text("pool", "MAX").upper()
    if method in ("STOCHASTIC",):
        importer.error(p.get("pool") or p, Code.E703, f"layer {name}: stochastic pooling cannot be written as a spec")
        return
    if p.text("global_pooling", "false") == "true":
        importer.emit(layer, name, "global_maxpool" if method == "MAX" else "global_avgpool", bottoms)
        return
    kernel = _pair(p, "kernel_size", "kernel_h", "kernel_w", None)
    if kernel is None:
        importer.error(p, Code.E701, f"layer {name}: pooling needs kernel_size (or global_pooling: true)")
        return
    stride = _pair(p, "stride", "stride_h", "stride_w", 1)
    args: dict[str, Value] = {"kernel": kernel, "stride": None if stride == kernel else stride,
                              "padding": _pair(p, "pad", "pad_h", "pad_w", 0), "ceil": True}
    if method == "MAX":
        importer.emit(layer, name, "maxpool", bottoms, **args)
    else:  # Caffe averages over the window clipped to the padded input: PyTorch's count_include_pad with ceil
        importer.emit(layer, name, "avgpool", bottoms, count_include_pad=True, **args)


def _inner_product(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    p = importer.param(layer, "inner_product_param")
    outputs = p.get("num_output")
    if outputs is None:
        importer.error(p, Code.E701, f"layer {name}: an inner product needs num_output")
        return
    bias = p.get("bias_term")
    if importer.blobs[bottoms[0]] not in importer.flat:  # Caffe's InnerProduct flattens from axis 1
        importer.emit(layer, f"{name}_flatten", "flatten", bottoms, top=bottoms[0], named=False)
    importer.emit(layer, name, "linear", bottoms, features=outputs.integer(),
                  bias=bias is None or bias.string() == "true")


def _relu(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    slope = importer.param(layer, "relu_param").get("negative_slope")
    if slope is not None and slope.number() != 0:
        importer.emit(layer, name, "leaky_relu", bottoms, slope=slope.number())
    else:
        importer.emit(layer, name, "relu", bottoms)


def _lrn(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    p = importer.param(layer, "lrn_param")
    region = p.get("norm_region")
    if region is not None and region.string() != "ACROSS_CHANNELS":
        importer.error(region, Code.E703, f"layer {name}: LRN within channels cannot be written as a spec",
                       "a spec's lrn normalises across channels (Caffe's default)")
        return

    def number(key: str, default: float) -> float:
        value = p.get(key)
        return value.number() if value else default

    importer.emit(layer, name, "lrn", bottoms, size=int(number("local_size", 5)), alpha=number("alpha", 1.0),
                  beta=number("beta", 0.75), k=number("k", 1.0))


def _concat(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    p = importer.param(layer, "concat_param")
    axis = p.get("axis") or p.get("concat_dim")
    dim = axis.integer() if axis else 1
    if dim < 1:
        importer.error(axis or p, Code.E703, f"layer {name}: a concatenation along the batch")
        return
    importer.emit(layer, name, "concat", bottoms, dim=dim - 1)


def _eltwise(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    p = importer.param(layer, "eltwise_param")
    operation = p.text("operation", "SUM").upper()
    if p.all("coeff") and any(c.number() != 1 for c in p.all("coeff")):
        importer.error(p.all("coeff")[0], Code.E703,
                       f"layer {name}: a weighted sum (coeff) cannot be written as a spec")
        return
    ops = {"SUM": "add", "PROD": "mul"}
    if operation not in ops:
        importer.error(p.get("operation") or p, Code.E703, f"layer {name}: Eltwise {operation} cannot be written "
                       "as a spec", "a spec adds (SUM) or multiplies (PROD)")
        return
    importer.emit(layer, name, ops[operation], bottoms)


def _batchnorm(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    p = importer.param(layer, "batch_norm_param")
    eps = p.get("eps")
    importer.emit(layer, name, "batchnorm", bottoms, eps=eps.number() if eps else 1e-5, affine=False)


def _scale(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    """Caffe's Scale after BatchNorm: that batch norm's affine parameters."""
    previous = importer.calls[-1] if importer.calls else None
    if previous is None or previous.op != "batchnorm" or importer.blobs.get(bottoms[0]) != previous.output:
        importer.error(layer, Code.E703, f"layer {name}: a Scale that does not follow a BatchNorm cannot be written "
                       "as a spec", "a spec scales inside batchnorm (affine)")
        return
    bias = importer.param(layer, "scale_param").get("bias_term")
    if bias is None or bias.string() != "true":
        importer.error(layer, Code.E703, f"layer {name}: a Scale without bias_term: true after BatchNorm",
                       "a spec's batchnorm has both the scale and the shift")
        return
    args = dict(previous.args)
    args.pop("affine", None)
    importer.calls[-1] = op_call("batchnorm", previous.inputs, previous.output, previous.scope, previous.classes,
                                 previous.name, previous.origin, **args)
    tops = [t.string() for t in layer.all("top")]
    if tops:
        importer.blobs[tops[0]] = previous.output


def _dropout(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    ratio = importer.param(layer, "dropout_param").get("dropout_ratio")
    importer.emit(layer, name, "dropout", bottoms, p=ratio.number() if ratio else 0.5)


def _softmax(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    axis = importer.param(layer, "softmax_param").get("axis")
    if axis is not None and axis.integer() != 1:
        importer.error(axis, Code.E703, f"layer {name}: a softmax over axis {axis.integer()}")
        return
    importer.emit(layer, name, "softmax", bottoms, dim=0)


def _split(importer: CaffeImporter, layer: Message, name: str, bottoms: list[str]) -> None:
    for top in layer.all("top"):
        importer.blobs[top.string()] = importer.blobs[bottoms[0]]


def _simple(op: str) -> Callable[[CaffeImporter, Message, str, list[str]], None]:
    return lambda importer, layer, name, bottoms: importer.emit(layer, name, op, bottoms)


LAYERS: dict[str, Callable[[CaffeImporter, Message, str, list[str]], None]] = {
    "Convolution": _conv, "Deconvolution": _conv, "Pooling": _pool, "InnerProduct": _inner_product,
    "ReLU": _relu, "Sigmoid": _simple("sigmoid"), "TanH": _simple("tanh"), "ELU": _simple("elu"),
    "LRN": _lrn, "Concat": _concat, "Eltwise": _eltwise, "BatchNorm": _batchnorm, "Scale": _scale,
    "Dropout": _dropout, "Softmax": _softmax, "Split": _split, "Flatten": _simple("flatten"),
}


def import_caffe(path: Path, name: str) -> ImportedNetwork:
    """The imported form of a Caffe prototxt (deploy or train_val; training parts left out)."""
    return CaffeImporter(read_source(path), name).run()
