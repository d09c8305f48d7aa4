"""Darknet `.cfg` -> `.cnn`: `cnndsl import darknet yolov3.cfg -o yolov3.cnn`.

The translation is faithful layer by layer (Darknet's padding rules, its shortcut and route
indexing, `[yolo]` heads as outputs) and readable: a convolution with batch norm and leaky ReLU is a
`conv_bn_leaky` block call, Darknet-53's residual unit (1x1 halving, 3x3 restoring, shortcut -3) is a
`residual` block, and runs of identical units become `residual(c) x n`. Every translated layer keeps
its Darknet index in its name (`as layer12`), so reports line up with Darknet's own log.

Sections and keys are checked: an unknown section, an unknown key or a value that does not parse is
a located error (file:line:col), never silently dropped. Keys that only concern training or box
decoding (learning rate, anchors, ...) are known and deliberately not translated.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..diagnostics import Code, Diagnostic, Location, SpecError
from ..syntax.fmt import FormatError, format_text
from ..syntax.source import SourceFile, read_source

# Keys that do not change the network's architecture at inference: known, accepted, not translated.
TRAINING_KEYS = {
    "net": {"batch", "subdivisions", "momentum", "decay", "angle", "saturation", "exposure", "hue",
            "learning_rate", "burn_in", "max_batches", "policy", "steps", "scales", "max_crop", "min_crop",
            "mosaic", "jitter", "aspect", "flip", "power", "step", "gamma", "rate", "inputs",
            "letter_box", "cutmix", "mixup", "blur", "time_steps"},
    "yolo": {"mask", "anchors", "classes", "num", "jitter", "ignore_thresh", "truth_thresh", "random",
             "scale_x_y", "iou_thresh", "iou_loss", "iou_normalizer", "cls_normalizer", "nms_kind",
             "beta_nms", "max_delta", "counters_per_class", "label_smooth_eps", "resize", "new_coords"},
    # YOLOv2's detection head: like [yolo], training settings only
    "region": {"anchors", "bias_match", "classes", "coords", "num", "softmax", "jitter", "rescore", "object_scale",
               "noobject_scale", "class_scale", "coord_scale", "absolute", "thresh", "random"},
}
ARCHITECTURE_KEYS = {
    "net": {"width", "height", "channels"},
    "convolutional": {"batch_normalize", "filters", "size", "stride", "pad", "padding", "groups", "dilation",
                      "activation"},
    "maxpool": {"size", "stride", "padding"},
    "avgpool": set(),
    "route": {"layers", "groups", "group_id"},
    "shortcut": {"from", "activation"},
    "upsample": {"stride"},
    "yolo": set(),
    "region": set(),
    "reorg": {"stride"},
    "dropout": {"probability"},
    "softmax": {"groups"},
    "connected": {"output", "activation", "batch_normalize"},
}
ACTIVATIONS = {"leaky": "leaky_relu(0.1)", "relu": "relu", "logistic": "sigmoid", "tanh": "tanh",
               "linear": None, "swish": "silu", "mish": "mish", "relu6": "relu6", "elu": "elu", "gelu": "gelu",
               "hard_swish": "hardswish"}


@dataclass
class Entry:
    value: str
    line: int
    col: int


@dataclass
class Section:
    kind: str
    line: int
    options: dict[str, Entry] = field(default_factory=dict)


class CfgErrors:
    def __init__(self, source: SourceFile):
        self.source = source
        self.items: list[Diagnostic] = []

    def add(self, code: Code, message: str, line: int, col: int = 1, hint: str | None = None) -> None:
        where = Location(self.source.path, line, col)
        self.items.append(Diagnostic(code, message, where, hint, excerpt=self.source.line(line)))


def parse_cfg(source: SourceFile, errors: CfgErrors) -> list[Section]:
    sections: list[Section] = []
    for number, raw in enumerate(source.lines, start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                errors.add(Code.E700, f"section header `{line}` is not closed", number, 1, "write `[name]`")
                continue
            sections.append(Section(line[1:-1].strip().lower(), number))
            continue
        key, sep, value = line.partition("=")
        col = len(raw) - len(raw.lstrip()) + 1
        if not sep or not key.strip():
            errors.add(Code.E701, f"expected `key=value`; got `{line}`", number, col)
        elif not sections:
            errors.add(Code.E701, f"`{key.strip()}` appears before any [section]", number, col)
        else:
            sections[-1].options[key.strip()] = Entry(value.strip(), number, col)
    return sections


@dataclass
class Layer:
    """One translated Darknet layer: its index, what it reads, and how it is written."""

    index: int
    kind: str
    inputs: list[int]  # indexes of the layers it reads (-1: the network input)
    text: str = ""  # the chain element(s), e.g. `conv_bn_leaky(32, 3)`
    merge: str | None = None  # "add" / "concat" when it joins several inputs
    channels: int | None = None
    conv: tuple[int, int, int] | None = None  # (filters, size, stride) of a plain conv_bn_leaky, for patterns


class Translator:
    def __init__(self, source: SourceFile, errors: CfgErrors):
        self.source, self.errors = source, errors
        self.layers: list[Layer] = []
        self.outputs: list[int] = []
        self.uses_conv_block = False

    # ---- values ---------------------------------------------------------------------------------
    def integer(self, section: Section, key: str, default: int | None = None, minimum: int = 0) -> int:
        entry = section.options.get(key)
        if entry is None:
            if default is None:
                self.errors.add(Code.E701, f"[{section.kind}] needs `{key}`", section.line)
                return 1
            return default
        try:
            value = int(entry.value)
        except ValueError:
            self.errors.add(Code.E701, f"`{key}` must be an integer; got `{entry.value}`", entry.line, entry.col)
            return default or 1
        if value < minimum:
            self.errors.add(Code.E701, f"`{key}` must be at least {minimum}; got {value}", entry.line, entry.col)
        return value

    def fraction(self, section: Section, key: str, default: float) -> float:
        """A probability in [0, 1), written back as Python writes floats (`.5` -> `0.5`: the language
        does not parse a leading dot)."""
        entry = section.options.get(key)
        if entry is None:
            return default
        try:
            value = float(entry.value)
        except ValueError:
            value = -1.0
        if not 0.0 <= value < 1.0:
            self.errors.add(Code.E701,
                            f"`{key}` must be a number in [0, 1); got `{entry.value}`", entry.line, entry.col)
            return default
        return value

    def activation(self, section: Section) -> str | None:
        entry = section.options.get("activation")
        name = entry.value if entry else "linear"
        if name not in ACTIVATIONS:
            where = (entry.line, entry.col) if entry else (section.line, 1)
            self.errors.add(Code.E701, f"activation `{name}` has no cnndsl equivalent", *where,
                            hint=f"supported: {', '.join(ACTIVATIONS)}")
            return None
        return ACTIVATIONS[name]

    def reference(self, section: Section, key: str, value: str, index: int) -> int:
        entry = section.options[key]
        try:
            ref = int(value)
        except ValueError:
            self.errors.add(Code.E701, f"`{key}` must list layer indexes; got `{value}`", entry.line, entry.col)
            return index - 1
        target = index + ref if ref < 0 else ref
        if not 0 <= target < index:
            self.errors.add(Code.E702, f"`{key}={value}` of layer {index} points to layer {target}, which is not an "
                            "earlier layer", entry.line, entry.col, "negative values count back from this layer")
            return index - 1
        return target

    def check_keys(self, section: Section) -> None:
        known = ARCHITECTURE_KEYS.get(section.kind, set()) | TRAINING_KEYS.get(section.kind, set())
        for key, entry in section.options.items():
            if key not in known:
                self.errors.add(Code.E701, f"[{section.kind}] has no key `{key}` that cnndsl understands", entry.line,
                                entry.col, f"known keys: {', '.join(sorted(ARCHITECTURE_KEYS[section.kind]))}"
                                if ARCHITECTURE_KEYS.get(section.kind) else None)

    # ---- layers ---------------------------------------------------------------------------------
    def translate(self, sections: list[Section]) -> tuple[int, int, int]:
        if not sections or sections[0].kind not in ("net", "network"):
            self.errors.add(Code.E700, "a Darknet cfg starts with a [net] section", sections[0].line if sections else 1)
            return (3, 416, 416)
        net = sections[0]
        net.kind = "net"
        self.check_keys(net)
        shape = (self.integer(net, "channels", 3, 1), self.integer(net, "height", None, 1),
                 self.integer(net, "width", None, 1))
        for section in sections[1:]:
            if section.kind not in ARCHITECTURE_KEYS or section.kind == "net":
                self.errors.add(Code.E700, f"unknown or unsupported section [{section.kind}]", section.line, 1,
                                f"supported: {', '.join('[' + k + ']' for k in ARCHITECTURE_KEYS if k != 'net')}")
                continue
            self.check_keys(section)
            getattr(self, f"_{section.kind}")(section, len(self.layers))
        return shape

    def _previous(self, index: int) -> list[int]:
        return [index - 1]

    def _convolutional(self, s: Section, i: int) -> None:
        filters, size = self.integer(s, "filters", None, 1), self.integer(s, "size", 1, 1)
        stride, groups = self.integer(s, "stride", 1, 1), self.integer(s, "groups", 1, 1)
        dilation = self.integer(s, "dilation", 1, 1)
        pad = size // 2 if self.integer(s, "pad", 0) else self.integer(s, "padding", 0)
        bn = bool(self.integer(s, "batch_normalize", 0))
        act = self.activation(s)
        layer = Layer(i, "conv", self._previous(i), channels=filters)
        if bn and act == ACTIVATIONS["leaky"] and pad == size // 2 and groups == 1 and dilation == 1:
            self.uses_conv_block = True
            args = f"{filters}, {size}" + (f", stride={stride}" if stride != 1 else "")
            layer.text, layer.conv = f"conv_bn_leaky({args})", (filters, size, stride)
        else:
            options = [f"stride={stride}"] * (stride != 1) + [f"padding={pad}"] * (pad != 0)
            options += [f"groups={groups}"] * (groups != 1) + [f"dilation={dilation}"] * (dilation != 1)
            options += ["bias=false"] * bn
            # the layer's name goes on the convolution, where Darknet's log counts the layer's BFLOPs
            parts = [f"conv({', '.join([str(filters), str(size), *options])}){NAME_HERE}"] + ["batchnorm"] * bn
            layer.text = " -> ".join(parts + ([act] if act else []))
        self.layers.append(layer)

    def _maxpool(self, s: Section, i: int) -> None:
        stride = self.integer(s, "stride", 1, 1)
        size = self.integer(s, "size", stride, 1)
        padding = self.integer(s, "padding", size - 1)
        # Darknet pads `padding` in total, starting at -padding/2: before = padding // 2, the rest after.
        before, after = padding // 2, padding - padding // 2
        options = [f"stride={stride}"] * (stride != size)
        if padding:
            options.append(f"padding=(({before}, {after}), ({before}, {after}))")
        self.layers.append(Layer(i, "maxpool", self._previous(i), f"maxpool({', '.join([str(size), *options])})"))

    def _avgpool(self, s: Section, i: int) -> None:
        self.layers.append(Layer(i, "avgpool", self._previous(i), "global_avgpool"))

    def _route(self, s: Section, i: int) -> None:
        if "layers" not in s.options:
            self.errors.add(Code.E701, "[route] needs `layers`", s.line)
            return self.layers.append(Layer(i, "route", self._previous(i)))
        refs = [self.reference(s, "layers", v.strip(), i) for v in s.options["layers"].value.split(",") if v.strip()]
        if not refs:
            self.errors.add(Code.E701, "[route] `layers` lists no layer", s.line)
            return self.layers.append(Layer(i, "route", self._previous(i)))
        groups = self.integer(s, "groups", 1, 1)
        if groups > 1:  # CSP (YOLOv4-tiny): the group_id-th of `groups` equal channel groups of one layer
            group = self.integer(s, "group_id", 0, 0)
            if len(refs) > 1 or group >= groups:
                entry = s.options["groups"]
                self.errors.add(Code.E701, f"[route] groups={groups} takes one layer and a group_id below {groups}; "
                                f"got {len(refs)} layer(s), group_id={group}", entry.line, entry.col)
                return self.layers.append(Layer(i, "route", refs[:1]))
            count = f"channels({SOURCE_HERE})"
            part = f"slice({count} * {group} // {groups}, {count} * {group + 1} // {groups})"
            return self.layers.append(Layer(i, "route", refs, part))
        self.layers.append(Layer(i, "route", refs, merge="concat" if len(refs) > 1 else None))

    def _shortcut(self, s: Section, i: int) -> None:
        if "from" not in s.options:
            self.errors.add(Code.E701, "[shortcut] needs `from`", s.line)
            return self.layers.append(Layer(i, "shortcut", self._previous(i)))
        act = self.activation(s)
        source = self.reference(s, "from", s.options["from"].value, i)
        self.layers.append(Layer(i, "shortcut", [i - 1, source], act or "", merge="darknet_shortcut"))

    def _upsample(self, s: Section, i: int) -> None:
        self.layers.append(Layer(i, "upsample", self._previous(i), f"upsample({self.integer(s, 'stride', 2, 1)})"))

    def _region(self, s: Section, i: int) -> None:
        self._yolo(s, i)  # the head reads the tensor before it, which is an output

    def _reorg(self, s: Section, i: int) -> None:
        # YOLOv2's passthrough: stride x stride blocks of positions become channels. The shapes and costs are
        # PyTorch's pixel_unshuffle's; Darknet orders the new channels differently, which matters for loading
        # Darknet's weights into the layers after it, not for the network's structure or counts.
        stride = self.integer(s, "stride", 2, 1)
        self.layers.append(Layer(i, "reorg", self._previous(i), f"pixel_unshuffle({stride})"))

    def _yolo(self, s: Section, i: int) -> None:
        self.outputs.append(i - 1)
        self.layers.append(Layer(i, "yolo", self._previous(i)))

    def _dropout(self, s: Section, i: int) -> None:
        probability = self.fraction(s, "probability", 0.5)
        self.layers.append(Layer(i, "dropout", self._previous(i), f"dropout({probability!r})"))

    def _softmax(self, s: Section, i: int) -> None:
        self.layers.append(Layer(i, "softmax", self._previous(i), "softmax"))

    def _connected(self, s: Section, i: int) -> None:
        act = self.activation(s)
        parts = ["flatten", f"linear({self.integer(s, 'output', None, 1)}){NAME_HERE}"] + ([act] if act else [])
        self.layers.append(Layer(i, "connected", self._previous(i), " -> ".join(parts)))


# ---- writing the spec -------------------------------------------------------------------------------
CONV_BLOCK = """# convolution, batch norm, leaky ReLU: Darknet's [convolutional] with batch_normalize=1 and
# activation=leaky (padding size/2, as pad=1 means)
block conv_bn_leaky(c, k, stride=1) {
    return in -> conv(c, k, stride=stride, padding=k // 2, bias=false) -> batchnorm -> leaky_relu(0.1)
}
"""
RESIDUAL_BLOCK = """# Darknet-53's residual unit: a 1x1 convolution to half the channels, a 3x3 back to c, and a
# shortcut from the unit's input (Darknet: [shortcut] from=-3, activation=linear)
block residual(c) {
    y = in -> conv_bn_leaky(c / 2, 1) -> conv_bn_leaky(c, 3)
    return [y, in] -> add
}
"""


SHORTCUT_BLOCK = """# Darknet's [shortcut]: the previous layer's output plus `from`'s on the channels they share (the
# others pass through), `from` sampled at the output's positions when it is larger (ResNet's
# down-sampling units in Darknet's resnet cfgs, which have no projection). Equal shapes: one `add`.
block darknet_shortcut() {
    input out, other
    const step = size(other, 1) // size(out, 1)
    sampled = other -> maxpool(1, stride=step) if step > 1
    if channels(sampled) >= channels(out) {
        shared = sampled -> slice(0, channels(out)) if channels(sampled) > channels(out)
        return [out, shared] -> add
    }
    head = out -> slice(0, channels(sampled))
    tail = out -> slice(channels(sampled), channels(out))
    summed = [head, sampled] -> add
    return [summed, tail] -> concat
}
"""


def _residual_at(layers: list[Layer], i: int) -> int | None:
    """The channel count c when layers i, i+1, i+2 are one residual unit reading layer i-1."""
    if i + 2 >= len(layers):
        return None
    a, b, s = layers[i], layers[i + 1], layers[i + 2]
    if not (a.conv and b.conv and s.kind == "shortcut" and s.inputs == [i + 1, i - 1] and not s.text):
        return None
    if a.conv[1:] != (1, 1) or b.conv[1:] != (3, 1) or a.conv[0] * 2 != b.conv[0]:
        return None
    return b.conv[0]


NAME_HERE = "{name}"  # where a layer's text takes its `as layerN`: on the op Darknet counts; else at the end
SOURCE_HERE = "{source}"  # in a grouped route's slice: the tensor it reads, named only when the spec is written


def _named(text: str, name: str) -> str:
    return text.replace(NAME_HERE, f" as {name}") if NAME_HERE in text else f"{text} as {name}"


def write_spec(name: str, cfg_name: str, shape: tuple[int, int, int], layers: list[Layer], outputs: list[int],
               uses_conv_block: bool) -> str:
    # A route to one layer and a [yolo] head add no op: they alias the tensor they read.
    alias: dict[int, int] = {}
    for layer in layers:
        if (layer.kind == "route" and not layer.merge and not layer.text) or layer.kind == "yolo":
            alias[layer.index] = alias.get(layer.inputs[0], layer.inputs[0])

    def resolved(index: int) -> int:
        return alias.get(index, index)

    def tensor(index: int) -> str:
        index = resolved(index)
        return "image" if index < 0 else f"layer{index}"

    def follows(layer: Layer) -> bool:
        return layer.inputs == [layer.index - 1] and not layer.merge and layer.kind not in ("route", "yolo")

    # tensors read by something other than the next layer need a name; a residual unit's shortcut
    # reads its own input and inner convolution, which the `residual` block wires internally
    unit_shortcuts = {i + 2 for i in range(len(layers)) if _residual_at(layers, i)}
    named = {resolved(i) for i in outputs}
    for layer in layers:
        if not follows(layer) and layer.index not in unit_shortcuts:
            named.update(resolved(ref) for ref in layer.inputs)

    lines = [f"# Translated from the Darknet configuration {cfg_name} by `cnndsl import darknet`.",
             "# Each layer is named after its Darknet index (`layerN`), so this report lines up with the",
             "# log Darknet prints when it loads the cfg. Check: cnndsl check --convention darknet THIS_FILE",
             f"network {name}", ""]
    if uses_conv_block:
        lines += [CONV_BLOCK]
    if any(_residual_at(layers, i) for i in range(len(layers))):
        lines += [RESIDUAL_BLOCK]
    if any(layer.merge == "darknet_shortcut" for layer in layers):
        lines += [SHORTCUT_BLOCK]
    lines += [f"input image: {shape[0]} x {shape[1]} x {shape[2]}", ""]

    chain: list[str] = []
    start = "image"

    def flush(index: int) -> None:
        nonlocal chain, start
        lines.append(f"{tensor(index)} = {start}" + "".join(f"\n    -> {op}" for op in chain))
        start, chain = tensor(index), []

    i = 0
    while i < len(layers):
        layer = layers[i]
        if layer.index in alias:  # routes to one layer and yolo heads: no op, a new start at most
            if chain:
                flush(layer.index - 1)
            start = tensor(layer.index)
            i += 1
            continue
        if not follows(layer):
            if chain:
                flush(layer.index - 1)
            start = tensor(layer.inputs[0]) if not layer.merge else \
                f"[{', '.join(tensor(r) for r in layer.inputs)}] -> {layer.merge} as layer{layer.index}"
            if layer.kind == "route" and layer.text:  # a grouped route: a slice of the channels of its source
                chain.append(_named(layer.text.replace(SOURCE_HERE, tensor(layer.inputs[0])), f"layer{layer.index}"))
            elif layer.text:  # a merge's activation: the merge carries the name
                chain.append(layer.text.replace(NAME_HERE, ""))
        else:
            unit, count, j = _residual_at(layers, i), 0, i
            # a run of identical residual units, none of whose inner tensors is read elsewhere
            while unit is not None and _residual_at(layers, j) == unit and not named & {j, j + 1} \
                    and (count == 0 or j - 1 not in named):
                count, j = count + 1, j + 3
            if count:
                chain.append(f"residual({unit})" + (f" x {count}" if count > 1 else "") + f" as layers{i}_{j - 1}")
                if j - 1 in named:
                    flush(j - 1)
                i = j
                continue
            chain.append(_named(layer.text, f"layer{layer.index}"))
        if layer.index in named:
            flush(layer.index)
        i += 1
    if chain or start.startswith("["):  # a network ending in a route or shortcut: its merge defines the output
        flush(layers[-1].index)
    lines.append("")
    heads = [tensor(index) for index in outputs] or ([tensor(layers[-1].index)] if layers else ["image"])
    lines += [f"output {'yolo' if outputs else 'out'}{n} = {head}" for n, head in enumerate(heads, start=1)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Translation:
    """A translated cfg: the .cnn text, and where each Darknet layer is in the cfg."""

    text: str
    source: SourceFile  # the cfg
    section_lines: dict[int, int]  # Darknet layer index -> the line of its section in the cfg

    @property
    def layers(self) -> int:
        """How many layers Darknet counts (the sections after [net]), as its log numbers them."""
        return len(self.section_lines)

    def relocated(self, diagnostics: list[Diagnostic], generated: Path) -> list[Diagnostic]:
        """Diagnostics of the translated spec, written to `generated`, that did not check, located in the cfg
        instead: at the section of the Darknet layer whose line of the generated spec they point at (each op
        of it is written `as layerN` on a line of its own), else at the cfg's first line. The generated file
        is not kept, so no diagnostic may point into it."""
        result = []
        for d in diagnostics:
            if d.location is None or d.location.file != str(generated):
                result.append(d)
                continue
            named = re.search(r"\bas layers?(\d+)", d.excerpt)
            line = self.section_lines.get(int(named.group(1)), 1) if named else 1
            where = f"Darknet layer {named.group(1)}" if named else "the network"
            result.append(Diagnostic(d.code, f"{d.message} (in {where} as translated)",
                                     Location(self.source.path, line, 1), d.hint, excerpt=self.source.line(line)))
        return result


def translate(path: Path, name: str | None = None) -> Translation:
    """The .cnn text for a Darknet cfg, with where its layers are; SpecError with every located problem of
    the cfg."""
    source = read_source(path)
    errors = CfgErrors(source)
    translator = Translator(source, errors)
    sections = parse_cfg(source, errors)
    shape = translator.translate(sections)
    if errors.items:
        raise SpecError(sorted(errors.items, key=lambda d: (d.location.line, d.location.col) if d.location else (0, 0)))
    network = name or re.sub(r"\W", "_", path.stem)
    text = write_spec(network, path.name, shape, translator.layers, translator.outputs, translator.uses_conv_block)
    # in the layout `cnndsl fmt` writes (one op per line stays one op per line); a translation that does not
    # parse is left as it is, for the check that follows to report, located in the cfg
    with contextlib.suppress(SpecError, FormatError):
        text = format_text(text, f"{network}.cnn")
    return Translation(text, source, {index: section.line for index, section in enumerate(sections[1:])})


def translate_cfg(path: Path, name: str | None = None) -> str:
    """The .cnn text for a Darknet cfg (`translate(path, name).text`)."""
    return translate(path, name).text
