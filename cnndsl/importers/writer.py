"""An imported network -> readable .cnn text.

The module hierarchy becomes blocks: each module that contains others (a ResNet's `BasicBlock`, a
`Sequential` stage) is a block instance named by its attribute (`as layer1`), so the layers keep their
qualified names (`layer1.0.conv1`). Instances whose bodies differ only in numbers share one block, the
numbers that differ becoming its parameters (a ResNet-50 has one bottleneck block, with and without its
projection, not sixteen copies); a `Sequential` of identical copies is a repeat (`bottleneck(64) x 3 as
layer1`). Inside a body, layers that feed each other are one chain; a tensor read twice is named.

`flat=True` writes one statement per op instead (no chains, no repeats); modules still become blocks,
whose instance names are the layers' names.
"""

from __future__ import annotations

import dataclasses
import keyword
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..diagnostics import Code, SpecError
from ..limits import DEFAULT_LIMITS
from ..ops import REGISTRY
from ..syntax.grammar import KEYWORDS, REPEAT
from .network import Call, ImportedNetwork, Value, import_error, layer_name

SLOT = "\x00{}\x00"  # a number in a body template, replaced by a literal or a block parameter
_SLOT = re.compile("\x00(\\d+)\x00")
NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*\Z")
RESERVED = KEYWORDS | {REPEAT, "true", "false", "in", "_"}
CONTAINERS = {"Sequential", "ModuleList", "ModuleDict", "Module"}  # classes that say nothing of what they hold
# A chain line starts at each of these (a convolution and its norm and activation read as one line)
LINE_STARTS = {"conv", "conv_transpose", "linear", "locally_connected"}
SlotFn = Callable[[Value, str], str]  # (value, parameter name hint) -> its placeholder in a template


@dataclass
class Scope:
    """A module that contains others: its calls and sub-modules in the order they run."""

    path: tuple[str, ...]
    cls: str
    items: list[Call | Scope] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # tensor ids read from outside, in order of first use
    output: str = ""  # the one tensor read outside it

    @property
    def name(self) -> str:
        return self.path[-1] if self.path else ""


@dataclass
class Template:
    """A body with its numbers taken out: instances with the same text share one block."""

    text: str  # lines, numbers as SLOT(i)
    values: list[Value]  # the numbers, by slot
    hints: list[str]  # a parameter name for each slot (the argument's name)
    blocks: list[Scope]  # the block instances called in it (each instance's template is known)


def literal(value: Value) -> str:
    """An argument value as .cnn text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".e") else f"{text}.0"
    if isinstance(value, tuple):
        return f"({literal(value[0])},)" if len(value) == 1 else f"({', '.join(literal(v) for v in value)})"
    if value is None:
        return "none"
    return str(value)  # a word: same, nearest, channels


def snake(name: str) -> str:
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
    return re.sub(r"\W+", "_", text).strip("_") or "module"


def scope_tree(network: ImportedNetwork) -> Scope:
    """The calls arranged by their modules; SpecError when a module runs twice (shared weights, which a
    spec cannot write) or does not read as one block (several tensors leave it)."""
    root = Scope((), network.name)
    scopes: dict[tuple[str, ...], Scope] = {(): root}
    closed: set[tuple[str, ...]] = set()
    current: tuple[str, ...] = ()
    for call in network.calls:
        path = call.scope
        common = 0
        while common < min(len(current), len(path)) and current[common] == path[common]:
            common += 1
        closed.update(current[:k] for k in range(common + 1, len(current) + 1))
        for k in range(common + 1, len(path) + 1):
            if path[:k] in closed:
                raise SpecError([import_error(
                    Code.E703, f"module {'.'.join(path[:k])} runs twice: a spec cannot share one module's weights "
                    "between two places", call.origin or network.source,
                    hint="give each use its own module in the source")])
            if path[:k] not in scopes:
                scopes[path[:k]] = Scope(path[:k], call.classes[k - 1] if k <= len(call.classes) else "Module")
                scopes[path[:k - 1]].items.append(scopes[path[:k]])
        scopes[path].items.append(call)
        current = path
    outputs = {tensor for _, tensor in network.outputs}
    _wire(root, outputs, network)
    return root


def _wire(root: Scope, outputs: set[str], network: ImportedNetwork) -> None:
    """Each scope's inputs and output, from which tensors cross its border."""
    readers: dict[str, list[Call]] = defaultdict(list)
    for call in network.calls:
        for tensor in call.inputs:
            readers[tensor].append(call)

    def calls_of(scope: Scope) -> list[Call]:
        found: list[Call] = []
        for item in scope.items:
            found += calls_of(item) if isinstance(item, Scope) else [item]
        return found

    def leaving(scope: Scope) -> tuple[list[Call], list[str]]:
        inside = calls_of(scope)
        ids = {id(call) for call in inside}
        return inside, [t for t in dict.fromkeys(call.output for call in inside)
                        if t in outputs or any(id(reader) not in ids for reader in readers[t])]

    def absorb(scope: Scope, parent: Scope, tensors: list[str]) -> bool:
        """A module whose several results one unnamed layer right after it merges (ASPP's branches, a
        ModuleList the parent concatenates) takes that layer in: it then returns one tensor."""
        merging = {id(reader): reader for t in tensors for reader in readers[t]}
        if len(merging) != 1 or any(t in outputs for t in tensors):
            return False
        merge = next(iter(merging.values()))
        at = next((i for i, item in enumerate(parent.items) if item is merge), None)  # by identity: calls may
        if merge.name is not None or at is None or \
                not set(merge.inputs) <= {c.output for c in calls_of(scope)}:  # hold arrays
            return False
        scope.items.append(parent.items.pop(at))
        return True

    def wire(scope: Scope, parent: Scope | None) -> None:
        for item in list(scope.items):
            if isinstance(item, Scope):
                wire(item, scope)
        if parent is None:
            return
        inside, found = leaving(scope)
        if len(found) > 1 and absorb(scope, parent, found):
            inside, found = leaving(scope)
        made = {call.output for call in inside}
        scope.inputs = list(dict.fromkeys(t for call in inside for t in call.inputs if t not in made))
        if len(found) != 1 or not scope.inputs:
            where = ".".join(scope.path)
            what = f"returns {len(found)} tensors" if found else "reads no tensor"
            raise SpecError([import_error(
                Code.E703, f"module {where} ({scope.cls}) {what}: a block returns one tensor computed from its "
                "inputs", inside[0].origin or network.source,
                hint="a spec writes each module as a block: rewrite this module to return one tensor")])
        scope.output = found[0]

    wire(root, None)


class Writer:
    def __init__(self, network: ImportedNetwork, flat: bool = False):
        self.network, self.flat = network, flat
        self.templates: dict[int, Template] = {}  # by id(scope)
        self.block_of: dict[str, tuple[str, list[int]]] = {}  # block key -> (block name, parameter slots)
        self.keys: dict[str, str] = {}  # a body's full key (class, inputs, template) -> its short key
        self.definitions: list[str] = []
        self.taken: set[str] = set()

    # -- bodies ----------------------------------------------------------------------------------------
    def template(self, scope: Scope) -> Template:
        """The body of `scope` (children first) with its numbers as slots."""
        if id(scope) in self.templates:
            return self.templates[id(scope)]
        values: list[Value] = []
        hints: list[str] = []
        blocks: list[Scope] = []

        def slot(value: Value, hint: str) -> str:
            values.append(value)
            hints.append(hint)
            return SLOT.format(len(values) - 1)

        layers: list[tuple[str, tuple[str, ...], str]] = []  # (layer text, inputs, output)
        named: set[str] = set()
        for item in scope.items:
            if isinstance(item, Scope):
                layers.append((self.instance(item, slot, blocks), tuple(item.inputs), item.output))
            else:
                layers.append((self.layer(item, slot, named), item.inputs, item.output))
        text = self.body(scope, layers)
        result = Template(text, values, hints, blocks)
        self.templates[id(scope)] = result
        return result

    def layer(self, call: Call, slot: SlotFn, named: set[str]) -> str:
        shown = [f"{slot(value, name) if _numeric(value) else literal(value)}" if i < call.positional
                 else f"{name}={slot(value, name) if _numeric(value) else literal(value)}"
                 for i, (name, value) in enumerate(call.args)]
        text = call.op + (f"({', '.join(shown)})" if shown else "")
        if call.name is not None and call.name not in named:
            named.add(call.name)
            text += f" as {layer_name(call.name)}"
        return text

    def instance(self, scope: Scope, slot: SlotFn, blocks: list[Scope]) -> str:
        """A sub-module as a call: a repeat when it is a Sequential of identical copies, else its block."""
        repeat = None if self.flat else _repeat_of(scope)
        if repeat is not None:
            copy = repeat[0]
            if isinstance(copy, Scope):
                blocks.append(copy)
                call = self.block_call(copy, slot)
            else:
                call = self.layer(dataclasses.replace(copy, name=None), slot, set())
            return f"{call} {REPEAT} {repeat[1]} as {layer_name(scope.name)}"
        self.template(scope)
        blocks.append(scope)
        return f"{self.block_call(scope, slot)} as {layer_name(scope.name)}"

    def key(self, scope: Scope) -> str:
        """A short key for the block `scope`'s body is an instance of: equal for equal bodies."""
        full = f"{scope.cls}\x01{len(scope.inputs)}\x01{self.template(scope).text}"
        return self.keys.setdefault(full, str(len(self.keys)))

    def block_call(self, scope: Scope, slot: SlotFn) -> str:
        """The call of `scope`'s block with every number of its body as an argument (the block's
        definition later keeps as parameters only those that differ between its instances)."""
        inner = self.template(scope)
        key = self.key(scope)
        arguments = [slot(value, hint) for value, hint in zip(inner.values, inner.hints, strict=True)]
        return f"\x02{key}\x02({', '.join(arguments)})"

    def body(self, scope: Scope, layers: list[tuple[str, tuple[str, ...], str]]) -> str:
        """Statements: chains of layers that feed each other, named tensors where a tensor is read twice."""
        reads = Counter(t for _, inputs, _ in layers for t in inputs)
        final = scope.output if scope.path else None
        outputs = {tensor for _, tensor in self.network.outputs}
        names: dict[str, str] = {}
        if scope.path:
            names.update(zip(scope.inputs, _input_names(len(scope.inputs)), strict=True))
        else:
            names.update({i.tensor: i.name for i in self.network.inputs})
        used = set(names.values()) | RESERVED
        lines: list[str] = []
        chain: list[str] = []
        start, last = "", ""

        def tensor_name(tensor: str, layer: str) -> str:
            if tensor not in names:
                alias = re.search(r" as (\w+)$", layer)
                base = alias.group(1) if alias and NAME.match(alias.group(1)) and alias.group(1) not in RESERVED \
                    else "t"
                name, n = (base, 1) if base != "t" else ("t1", 1)
                while name in used:
                    n += 1
                    name = f"t{n}" if base == "t" else f"{base}_{n}"
                used.add(name)
                names[tensor] = name
            return names[tensor]

        def flush() -> None:
            if chain:
                lines.append(f"{tensor_name(last, chain[-1])} = {start}" + _joined(chain))

        for text, inputs, output in layers:
            continues = chain and inputs == (last,) and reads[last] == 1 and last not in outputs \
                and last != final and not self.flat
            if not continues:
                flush()
                refs = [names[t] for t in inputs]
                start, chain = refs[0] if len(refs) == 1 else f"[{', '.join(refs)}]", []
            chain.append(text)
            last = output
        if scope.path:
            if chain and last == final:
                lines.append(f"return {start}" + _joined(chain))
            else:
                flush()
                lines.append(f"return {names[final]}" if final else "return in")
        else:
            rest = self.network.outputs
            if chain and rest and rest[-1][1] == last:
                lines.append(f"output {rest[-1][0]} = {start}" + _joined(chain))
                rest = rest[:-1]
            else:
                flush()
            lines += [f"output {name} = {names[tensor]}" for name, tensor in rest]
        return "\n".join(lines)

    # -- blocks ----------------------------------------------------------------------------------------
    def resolve(self, text: str, values: list[Value]) -> str:
        """A template's text with block keys made block calls (their definitions written on first use)
        and slots made literals."""
        def call(match: re.Match[str]) -> str:
            key, args = match.group(1), match.group(2)
            name, parameters = self.block_of[key]
            slots = [int(m) for m in _SLOT.findall(args)]
            shown = [SLOT.format(slots[p]) for p in parameters]
            return f"{name}({', '.join(shown)})" if shown else name

        text = re.sub("\x02(\\d+)\x02\\(((?:\x00\\d+\x00(?:, )?)*)\\)", call, text)
        return _SLOT.sub(lambda m: literal(values[int(m.group(1))]), text)

    def define_blocks(self, root: Scope) -> None:
        """One block per distinct body; parameters where its instances' numbers differ."""
        instances: dict[str, list[Scope]] = defaultdict(list)
        order: list[str] = []

        def collect(scope: Scope) -> None:
            for child in self.template(scope).blocks:
                collect(child)
            if scope.path:
                key = self.key(scope)
                if key not in instances:
                    order.append(key)
                instances[key].append(scope)

        collect(root)
        for key in order:  # children before parents: a body calls only blocks defined above it
            group = instances[key]
            first = self.template(group[0])
            columns = list(zip(*(self.template(s).values for s in group), strict=True)) if first.values else []
            varying: dict[tuple[Value, ...], int] = {}
            for slot_index, column in enumerate(columns):
                if len(set(map(repr, column))) > 1 and column not in varying:
                    varying[column] = slot_index
            parameters = list(varying.values())
            name = self.block_name(group[0])
            self.block_of[key] = (name, parameters)
            # a parameter may not shadow a word the body uses as a value (`over=channels`) or a name in it
            used = set(_WORD.findall(_SLOT.sub("", first.text)))
            names = _parameter_names([first.hints[p] for p in parameters], used)
            by_column = {column: names[i] for i, column in enumerate(varying)}
            body = first.text
            values: list[Value] = list(first.values)
            for slot_index, column in enumerate(columns):
                if column in by_column:
                    values[slot_index] = _Word(by_column[column])
            count = len(group[0].inputs)
            inputs = "" if count == 1 else f"    input {', '.join(_input_names(count))}\n"
            resolved = self.resolve(body, values)
            indented = "\n".join(f"    {line}" for line in resolved.splitlines())
            self.definitions.append(f"block {name}({', '.join(names)}) {{\n{inputs}{indented}\n}}")

    def block_name(self, scope: Scope) -> str:
        """The block's name: its class in snake case (`BasicBlock` -> basic_block); a container's
        (`Sequential`) its attribute without digits (`layer2` -> layer); a second body of the same name
        gets `_2`."""
        base = snake(scope.cls)
        if scope.cls in CONTAINERS:
            base = re.sub(r"[_0-9]+$", "", snake(scope.name)) or "stage"
        if base in REGISTRY or base in RESERVED or not NAME.match(base) or keyword.iskeyword(base):
            base = f"{base}_block"
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    def write(self) -> str:
        root = scope_tree(self.network)
        self.template(root)
        self.define_blocks(root)
        net = self.network
        header = [f"# Imported from {net.kind} {net.source} by `cnndsl import`; "
                  "layer names are the source's own module names.", f"network {net.name}", ""]
        notes = [f"# note: {note}" for note in net.notes]
        inputs = [f"input {i.name}: {' x '.join(map(str, i.shape))}" for i in net.inputs]
        body = self.resolve(self.templates[id(root)].text, self.templates[id(root)].values)
        parts = [*header[:1], *notes, *header[1:], *("\n\n".join(self.definitions) + "\n" if self.definitions else "",),
                 *inputs, "", body]
        return "\n".join(part for part in parts if part is not None).replace("\n\n\n", "\n\n").strip() + "\n"


class _Word(str):
    """A block parameter's name standing where a number was: written as is."""


def _joined(chain: list[str]) -> str:
    """A chain's layers after its source: a new line at each layer with weights of its own or a block (a
    convolution, its norm and its activation read as one line); all on one line when short."""
    text = "".join(f" -> {layer}" for layer in chain)
    if len(text) < 80 and "\n" not in text:
        return text
    parts = []
    for i, layer in enumerate(chain):
        head = layer.split("(", 1)[0].split(" ", 1)[0]
        starts = i == 0 or head in LINE_STARTS or head.startswith("\x02") or f" {REPEAT} " in layer
        parts.append(f"\n    -> {layer}" if starts else f" -> {layer}")
    return "".join(parts)


def _input_names(count: int) -> list[str]:
    """A block's input names: `in` when it has one (the language's default), else x1, x2, ..."""
    return ["in"] if count == 1 else [f"x{i + 1}" for i in range(count)]


def _numeric(value: Value) -> bool:
    return not isinstance(value, bool | str) and value is not None


_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def _parameter_names(hints: list[str], avoid: set[str]) -> list[str]:
    names: list[str] = []
    for hint in hints:
        base = hint if NAME.match(hint) and hint not in RESERVED else "p"
        name, n = base, 1
        if name in avoid:
            name = f"{base}{n + 1}"
        while name in names or name in avoid:
            n += 1
            name = f"{base}{n}"
        names.append(name)
    return names


def _repeat_of(scope: Scope) -> tuple[Call | Scope, int] | None:
    """(the copy, how many) when `scope` is a chain of identical items named 0, 1, ..., else None."""
    items = scope.items
    if len(items) < 2 or [_item_name(item) for item in items] != [str(i) for i in range(len(items))]:
        return None
    previous = scope.inputs[0] if len(scope.inputs) == 1 else None
    for item in items:
        inputs = tuple(item.inputs) if isinstance(item, Scope) else item.inputs
        if previous is None or inputs != (previous,):
            return None
        previous = item.output
    first = items[0]
    if isinstance(first, Call):
        same = all(isinstance(i, Call) and (i.op, i.args) == (first.op, first.args) for i in items)
    else:
        same = all(isinstance(i, Scope) and _shape_of(i) == _shape_of(first) for i in items)
    return (first, len(items)) if same else None


def _shape_of(scope: Scope) -> tuple[object, ...]:
    """What makes two sub-modules the same copy: their classes, ops and arguments, in order."""
    return (scope.cls, len(scope.inputs), *(
        _shape_of(item) if isinstance(item, Scope) else (item.op, item.args, item.name) for item in scope.items))


def _item_name(item: Call | Scope) -> str | None:
    return item.name if isinstance(item, Scope) else item.name


def write_spec(network: ImportedNetwork, flat: bool = False) -> str:
    """The .cnn text of an imported network; E210 past the checker's layer limit (the spec would be
    refused, and writing a million layers takes minutes)."""
    if len(network.calls) > DEFAULT_LIMITS.layers:
        raise SpecError([import_error(Code.E210, f"the imported network has {len(network.calls):,} layers, more "
                                      f"than a spec may expand to ({DEFAULT_LIMITS.layers:,})", network.source)])
    return Writer(network, flat).write()
