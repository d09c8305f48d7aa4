"""Which input sizes a network accepts exactly (`cnndsl sizes`): sizes where every window fits without
dropping input (no W100), every merge and crop lines up, and every output is non-empty (no shape error).

A size is judged by running each layer's shape rule on the checked graph with the input resized, the
rules `check` runs. The graph's structure may itself depend on shapes (`channels(x)` in an argument):
the elaborator records every shape an expression read (`Graph.shape_reads`), and a size at which any
of those reads would differ is judged by expanding the spec again at that size, as `check` would.

Along one axis, each layer's size is `floor((n + a) / s) + b`-shaped in its input; growing the input by
the product of the strides in front of a layer grows that layer's input by a multiple of its stride.
So the sizes that fit repeat with the network's period P (the numerators of the layers' effective
strides, their least common multiple): in each residue class modulo P the sizes are affine, outputs
grow with the input, and a merge's two sizes agree everywhere or at one size. Where every class is
empty or a tail ("all sizes from m"), the sizes have a closed form: arithmetic progressions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from ..diagnostics import Category, Code, Diagnostic, DiagnosticSink
from ..graph.model import INPUT, Graph
from ..layout import fmt_shape, spatial
from ..limits import MAX_INTEGER
from ..ops import OpParams, ShapeError, WindowAttrs
from ..ops.base import Shape
from .lints import unread_tails

AXIS_LETTERS = {1: "L", 2: "HW", 3: "DHW"}
TOGETHER = {"HW": "H and W together", "DHW": "D, H and W together"}


def axes_in_words(letters: str) -> str:
    """`HW` -> "H and W together"; one axis stays its letter."""
    return TOGETHER.get(letters, letters)


def only_shape_rule_errors(diagnostics: Sequence[Diagnostic]) -> bool:
    """Whether every error is a shape rule broken at the declared size (E301-E30x, not E300's wrong rank):
    the graph was built whole despite them, and other sizes may mend them."""
    return all(Code[d.code].category is Category.SHAPES and d.code != Code.E300 for d in diagnostics if d.is_error)
MAX_SIZES = 65_536  # sizes one run judges: a range past this is refused, not swept for minutes
MAX_LAYER_SIZES = 4_000_000  # layers x sizes one run resolves (about a minute); ResNet-152 x 2017 is 1.0M
MAX_REEXPANSIONS = 512  # sizes judged by expanding the spec again (tens of milliseconds each)


@dataclass(frozen=True)
class Verdict:
    """One input size: whether it fits, else the rule it breaks and where (the first error in graph order,
    else the first W100, as `check` reports them); and
    whether it is aligned, else the first strided layer whose output times its stride is not its input."""

    size: int
    fits: bool
    code: str = ""
    layer: str = ""
    message: str = ""
    misaligned: str = ""  # "`layer2.0.conv1`: input 57 = 29 x 2 - 1" (empty: every stride divides its input)

    @property
    def aligned(self) -> bool:
        return self.fits and not self.misaligned


@dataclass(frozen=True)
class Progression:
    """The sizes start, start + step, start + 2 step, ... (within the range swept)."""

    start: int
    step: int

    def describe(self) -> str:
        if self.step == 1:
            return f"every size from {self.start}"
        if self.start % self.step == 0:
            return f"multiples of {self.step} from {self.start}"
        return f"{self.start} + {self.step}k (k >= 0)"


@dataclass
class Sizes:
    """What `cnndsl sizes` reports for one input and one choice of axes."""

    input: str
    shape: Shape  # the input's declared per-sample shape
    axes: tuple[int, ...]  # spatial axes varied together (0 = the first spatial axis)
    axis_names: str  # "H", "HW", "L"
    low: int
    high: int
    verdicts: list[Verdict]
    period: int  # P: the sizes that fit repeat with it (module docstring)
    fitting_form: list[Progression] | None  # the fitting sizes as progressions; None: none in the range
    aligned_form: list[Progression] | None  # the same for the aligned sizes
    reexpanded: int = 0  # sizes judged by expanding the spec again (its structure reads shapes)
    failures: list[Failure] = field(default_factory=list)
    at: list[Verdict] = field(default_factory=list)  # sizes asked for by name (`--at`), in or out of the range
    declared_verdict: Verdict | None = None  # the declared size's, in or out of the range

    @property
    def fitting(self) -> list[int]:
        return [v.size for v in self.verdicts if v.fits]

    @property
    def aligned(self) -> list[int]:
        return [v.size for v in self.verdicts if v.aligned]

    @property
    def declared(self) -> int:
        return spatial(self.shape)[self.axes[0]]

    def refit(self, period: int) -> None:
        """The closed forms with the period `period` (from the sweep's graph, or one where a size fits)."""
        self.period = period
        self.fitting_form = closed_form(self.verdicts, period)
        self.aligned_form = closed_form(self.verdicts, period, aligned=True)


@dataclass
class Failure:
    """Sizes that break the same rule at the same layer: the rule, the layer, how many, one example."""

    code: str
    layer: str
    count: int
    example: Verdict


def resized(shape: Shape, axes: Sequence[int], size: int) -> Shape:
    dims = list(shape)
    for axis in axes:
        dims[1 + axis] = size
    return tuple(dims)


def judge(graph: Graph, input_name: str, shape: Shape, size: int) -> Verdict | None:
    """The verdict on `size` for the input `input_name` given `shape` (the other inputs as declared), from
    the shape rules on `graph`; None when an expression of the spec read a shape that differs at this size
    (the graph's structure might differ: expand the spec again)."""
    shapes: dict[str, Shape] = {}
    error: Verdict | None = None  # the first shape rule broken, as `check` reports it
    dropped: Verdict | None = None  # the first W100 (`check` reports it when nothing else is wrong)
    misaligned = ""
    source = graph.inputs[input_name]
    for node in graph.nodes():
        if node.op == INPUT:
            assert node.shape is not None
            shapes[node.name] = shape if node.name == source else node.shape
            continue
        if any(name not in shapes for name in node.inputs):
            continue  # downstream of a failure: its shape is unknown
        inputs = tuple(shapes[name] for name in node.inputs)
        assert isinstance(node.params, OpParams)
        try:
            attrs = node.op.resolve(node.params, inputs)
        except ShapeError as exc:
            error = error or Verdict(size, False, exc.code, node.name, exc.message)
            continue
        if any(d <= 0 or d > MAX_INTEGER for d in attrs.out):
            error = error or Verdict(size, False, Code.E304, node.name,
                                     "the input is too small for this layer: an output size is not positive")
            continue
        misaligned = misaligned or stride_misfit(node.name, attrs)
        tails = unread_tails(attrs)
        if tails and dropped is None:
            axis, count = tails[0]
            dropped = Verdict(size, False, Code.W100, node.name,
                              f"stride does not fit axis {axis + 1}: the last {count} input position(s) are never read")
        shapes[node.name] = attrs.out
    for (tensor, read), value in graph.shape_reads.items():
        now = shapes.get(tensor)
        if now is None or (now if read is None else now[read]) != value:
            return None
    return error or dropped or Verdict(size, True, misaligned=misaligned)


def stride_misfit(name: str, attrs: object) -> str:
    """Where a strided window's output times its stride is not its input (the window grid is not aligned
    with the input: the last window hangs over the padding, or input is left over), else ""."""
    if not isinstance(attrs, WindowAttrs):
        return ""
    g = attrs.geometry
    for axis, n in enumerate(spatial(attrs.x)):
        if g.stride[axis] > 1 and g.out[axis] * g.stride[axis] != n:
            return f"`{name}`: input {n} on axis {axis + 1} is not {g.out[axis]} x stride {g.stride[axis]}"
    return ""


def period(graph: Graph, axes: Sequence[int]) -> int:
    """P: the least common multiple of the numerators of the effective strides of the sliding windows'
    outputs along `axes` (after an upsampling by 2 of a stride-4 path a window has stride 2; after one
    of a stride-1 path, 1/2: numerator 1). Global and adaptive pooling, whose strides follow the input
    size, are not windows and do not count."""
    result = 1
    for node in graph.nodes():
        facts = graph.checked(node.name)
        if facts is None or facts.field is None or not isinstance(facts.attrs, WindowAttrs):
            continue
        for axis in axes:
            if axis < len(facts.field):
                stride = Fraction(facts.field[axis].stride)
                if stride > 0:
                    result = math.lcm(result, stride.numerator)
    return result


def closed_form(verdicts: Sequence[Verdict], step: int, aligned: bool = False) -> list[Progression] | None:
    """Progressions with difference `step` (or a divisor of it) that hold exactly the fitting (or aligned)
    sizes of `verdicts` (consecutive sizes); None when some residue class is neither empty nor a tail."""
    fits = {v.size: v.aligned if aligned else v.fits for v in verdicts}
    if not any(fits.values()):
        return []
    for divisor in sorted(d for d in range(1, step + 1) if step % d == 0):
        progressions = []
        for residue in range(divisor):
            members = [s for s in fits if s % divisor == residue]
            fitting = [s for s in members if fits[s]]
            if not fitting:
                continue
            start = fitting[0]
            if fitting != [s for s in members if s >= start] or len(fitting) < 2:
                break
            progressions.append(Progression(start, divisor))
        else:
            return sorted(progressions, key=lambda p: p.start)
    return None


def group_failures(verdicts: Sequence[Verdict]) -> list[Failure]:
    groups: dict[tuple[str, str], Failure] = {}
    for v in verdicts:
        if v.fits:
            continue
        key = (v.code, v.layer)
        if key in groups:
            groups[key].count += 1
        else:
            groups[key] = Failure(v.code, v.layer, 1, v)
    return sorted(groups.values(), key=lambda f: -f.count)


def sweep(graph: Graph, input_name: str, axes: Sequence[int], low: int, high: int,
          rebuild: Callable[[dict[str, Shape]], Graph | Verdict], at: Sequence[int] = ()) -> Sizes:
    """Judge every size in low..high (inclusive) of `axes` of input `input_name`, and the sizes `at`.
    `rebuild` expands the spec at given input shapes: the checked graph, or a verdict when it has errors."""
    declared = graph.node(graph.inputs[input_name]).shape
    assert declared is not None
    reexpanded = 0

    def verdict_at(size: int) -> Verdict:
        nonlocal reexpanded
        shape = resized(declared, axes, size)
        verdict = judge(graph, input_name, shape, size)
        if verdict is None:
            reexpanded += 1
            built = rebuild({input_name: shape})
            verdict = built if isinstance(built, Verdict) else judge(built, input_name, shape, size)
            assert verdict is not None  # a graph judged at its own shapes reads what it read
        return verdict

    verdicts = [verdict_at(size) for size in range(low, high + 1)]
    asked, at_declared = [verdict_at(size) for size in at], verdict_at(spatial(declared)[axes[0]])
    names = AXIS_LETTERS[len(spatial(declared))]
    result = Sizes(input_name, declared, tuple(axes), "".join(names[a] for a in axes), low, high, verdicts, 1, None,
                   None, reexpanded, group_failures(verdicts), asked, at_declared)
    result.refit(period(graph, axes))
    return result


def nearest_fitting(graph: Graph, input_name: str, axes: Sequence[int], size: int, radius: int
                    ) -> tuple[int | None, int | None]:
    """The nearest sizes below and above `size` (within `radius`) that fit, from the shape rules alone;
    (None, None) when the spec's structure reads shapes that would change (then nothing is claimed)."""
    declared = graph.node(graph.inputs[input_name]).shape
    assert declared is not None
    found: list[int | None] = []
    for direction in (-1, 1):
        hit = None
        for distance in range(1, radius + 1):
            candidate = size + direction * distance
            if candidate < 1:
                break
            verdict = judge(graph, input_name, resized(declared, axes, candidate), candidate)
            if verdict is None:
                return None, None
            if verdict.fits:
                hit = candidate
                break
        found.append(hit)
    return found[0], found[1]


SIZE_RULES = (Code.W100, Code.E302, Code.E303, Code.E304)  # what a different input size can mend
HINT_RADIUS = 64  # at most this many sizes tried on each side of the declared one for I104 ...
HINT_SHARE = 4  # ... and at most a quarter of it: a size a tenth of the one declared is no hint


def size_hints(graph: Graph, sink: DiagnosticSink) -> None:
    """I104: where the declared input size breaks a size rule (W100, a merge or crop that does not line up,
    an empty output), the nearest sizes on each side that fit, found by the shape rules alone. Nothing is
    said when other errors leave the graph's structure unknown, or no size near the declared one fits."""
    if not any(d.code in SIZE_RULES for d in sink.items):
        return
    if not only_shape_rule_errors(sink.items):
        return
    for name, node_name in graph.inputs.items():
        shape = graph.node(node_name).shape
        assert shape is not None
        dims = spatial(shape)
        groups = [tuple(range(len(dims)))] if len(set(dims)) == 1 else [(axis,) for axis in range(len(dims))]
        for axes in groups if dims else []:
            declared = judge(graph, name, shape, dims[axes[0]])
            if declared is None or declared.fits:
                continue
            size = dims[axes[0]]
            below, above = nearest_fitting(graph, name, axes, size, min(HINT_RADIUS, max(8, size // HINT_SHARE)))
            if below is None and above is None:
                continue
            which = axes_in_words("".join(AXIS_LETTERS[len(dims)][axis] for axis in axes))
            nearest = " and ".join(str(size) for size in (below, above) if size is not None)
            sink.emit(Code.I104, f"input `{name}` ({fmt_shape(shape)}) does not fit the network; the nearest sizes of "
                      f"{which} that fit are {nearest}", graph.node(node_name).location,
                      f"`cnndsl sizes` lists every size that fits ({declared.code} at `{declared.layer}` here)")
