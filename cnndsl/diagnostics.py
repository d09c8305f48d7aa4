"""Located diagnostics: one format for every error, warning and note cnndsl reports.

Every diagnostic carries a code from ``CODES`` (documented in docs/diagnostics.md, generated from this
table), a position in a source file, the rule that broke with the values seen, and optionally a hint
and a trail of notes (the block calls that led to it). Passes collect diagnostics into a
``DiagnosticSink``; callers raise ``SpecError`` once, with all of them, at the end of a stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from .limits import DEFAULT_LIMITS


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class CodeInfo:
    severity: Severity
    title: str
    example: str  # a one-line spec fragment that triggers it


def _error(title: str, example: str) -> CodeInfo:
    return CodeInfo(Severity.ERROR, title, example)


def _warning(title: str, example: str) -> CodeInfo:
    return CodeInfo(Severity.WARNING, title, example)


def _info(title: str, example: str) -> CodeInfo:
    return CodeInfo(Severity.INFO, title, example)


CODES: dict[str, CodeInfo] = {
    # files and syntax
    "E001": _error("file cannot be read as a spec", "cnndsl check missing.cnn"),
    "E002": _error("empty spec", "(a file with only comments)"),
    "E100": _error("syntax error", "x -> conv(16, 3) relu"),
    "E101": _error("unexpected end of file", "x -> conv(16, 3"),
    "E102": _error("nesting too deep", "const c = ((((((1))))))   (past 200 levels)"),
    "E103": _error("number out of range", "const c = 99999999999999999999"),
    "E104": _error("spec too long", "(a file of more than 150,000 tokens)"),
    # names and arguments
    "E200": _error("unknown layer or block", "x -> convv(16, 3)"),
    "E201": _error("unknown name", "x -> conv(chanels, 3)"),
    "E202": _error("duplicate name", "input x: 3 x 32 x 32\ninput x: 1 x 8"),
    "E203": _error("unknown argument", "x -> conv(16, 3, strides=2)"),
    "E204": _error("missing argument", "x -> conv(16)"),
    "E205": _error("invalid argument value", "x -> conv(16, 3, stride=0)"),
    "E206": _error("argument given twice or too many positional arguments", "x -> conv(16, 3, 1, 1)"),
    "E207": _error("wrong number of inputs", "[a, b] -> relu"),
    "E208": _error("invalid expression", "const c = 7 / 2"),
    "E209": _error("invalid network structure", "return x -> relu   (outside a block)"),
    "E210": _error("network too large to expand", "x -> relu x 1000000000"),
    # shapes
    "E300": _error("input rank does not fit the layer", "x -> conv2d(16, 3)   (x: 1 x 40)"),
    "E301": _error("channel mismatch", "[a, b] -> add   (16 vs 32 channels)"),
    "E302": _error("spatial size mismatch", "[a, b] -> concat   (28x28 vs 27x27)"),
    "E303": _error("kernel larger than padded input", "x -> conv(16, 9)   (x: 3 x 7 x 7)"),
    "E304": _error("non-positive or out-of-range size", "input x: 3 x 0 x 32"),
    "E305": _error("groups do not divide channels", "x -> conv(16, 3, groups=5)"),
    "E306": _error("invalid layer configuration", "x -> maxpool(2, padding=2)"),
    # graph
    "E400": _error("tensor used before it is defined (a cycle)", "a = b -> relu\nb = a -> relu"),
    # imports and blocks
    "E500": _error("import not found", 'import "missing.cnn"'),
    "E501": _error("cyclic import", 'a.cnn imports "b.cnn", which imports "a.cnn"'),
    "E502": _error("block recursion", "block f(c) { return in -> f(c) }"),
    "E503": _error("invalid block definition", "block f(c=1, d) { return in }"),
    # backends
    "E600": _error("op has no lowering in this backend", "cnndsl compile spec.cnn --to tvm   (an op TVM lacks)"),
    "E601": _error("weights do not fit the network", "cnndsl compile spec.cnn --weights other_model.pt"),
    # importers
    "E700": _error("unknown or malformed section in an imported file", "[convolutional2]   (in a Darknet .cfg)"),
    "E701": _error("unknown key or invalid value in an imported file", "filterz=32   (in a Darknet [convolutional])"),
    "E702": _error("invalid layer reference in an imported file", "[route] layers=-200   (in a Darknet .cfg)"),
    # lints
    "W100": _warning("stride does not fit the input: trailing input is never read",
                     "x -> conv(8, 3, stride=3)   (x: 1 x 7 x 7)"),
    "W101": _warning("unused tensor", "y = x -> relu   (y never used)"),
    "W102": _warning("padding larger than half the kernel", "x -> conv(8, 3, padding=2)"),
    "W103": _warning("receptive fields of merged paths are misaligned", "[a, b] -> add   (different centres)"),
    "I100": _info("first layer whose receptive field covers the whole input", "(reported once per network)"),
    "I101": _info("convolution channels not a multiple of 8 (tensor cores)", "x -> conv(15, 3)"),
    "I102": _info("receptive field through adaptive pooling is an upper bound",
                  "x -> adaptive_avgpool(7)   (x: 64 x 10 x 10)"),
    "I103": _info("a block library: blocks, no network", "block cbr(c) { ... }   (and no input or output)"),
    "I104": _info("input sizes near the declared one that fit", "input x: 3 x 570 x 570   (U-Net: 564 and 572 fit)"),
}

# What usually fixes each code (`cnndsl explain CODE`, docs/diagnostics.md).
FIXES: dict[str, str] = {
    "E001": "give the path of a readable .cnn text file (UTF-8, a regular file)",
    "E002": "declare an input and an output: `input x: 3 x 224 x 224`, `output y = x -> ...`",
    "E100": "join layers with `->`; docs/language.md shows every statement",
    "E101": "close what the line opened: `)`, `]` or `}`",
    "E102": "name intermediate values with `const` instead of nesting",
    "E103": "integers stop at 2^63; shapes and counts that large are not networks",
    "E104": "split the spec into blocks in files of their own and `import` them",
    "E200": "check the spelling (docs/ops.md lists the ops), or import the block",
    "E201": "define it first (`const`, a block parameter, an earlier tensor), or fix the spelling",
    "E202": "give one of them another name (`as name`)",
    "E203": "use the argument names of docs/ops.md or of the block's parameters",
    "E204": "give every argument that has no default",
    "E205": "use a value in the argument's range (docs/ops.md gives each argument's type)",
    "E206": "pass each argument once; the later ones by keyword",
    "E207": "merge several tensors first (`[a, b] -> add` or `-> concat`); a repeat takes one input",
    "E208": "divide sizes with `//`; a condition is `true` or `false`",
    "E209": "declare `input` and `output` at the top level; `return` only inside a block",
    "E210": "check repeat counts (`x N`) and nested blocks; --max-layers raises the bound",
    "E300": "use the op that follows the input's rank (`conv` for 1-D, 2-D and 3-D) or reshape the input",
    "E301": "make the channels agree: a 1x1 `conv` to match them, or `concat` instead of `add`",
    "E302": "make the sizes agree: pad, `crop`, or change a stride",
    "E303": "use a smaller kernel or dilation, add padding, or downsample less before it",
    "E304": "every size is a positive integer",
    "E305": "choose groups that divide both channel counts (or `groups=depthwise`)",
    "E306": "follow the layer's constraints (pooling pads at most half its kernel)",
    "E400": "define each tensor before it is used: a network is a graph without cycles",
    "E500": "imports are relative to the importing file, or on --import-path / $CNNDSL_PATH",
    "E501": "move what both files need into a third file that both import",
    "E502": "repeat a block with `x N` instead of calling it from itself",
    "E503": "put parameters with defaults last, and end the block with `return`",
    "E600": "compile for the other backend, or use an op it lowers (docs/ops.md)",
    "E601": "load weights saved from this network, or rename their keys with --weights-map",
    "E700": "use Darknet's section names (convolutional, maxpool, route, shortcut, ...)",
    "E701": "use the keys Darknet's parser reads for that section",
    "E702": "point the route or shortcut at an existing earlier layer",
    "W100": "pad the input or pick sizes where (input + padding - kernel) is a multiple of the stride",
    "W101": "use the tensor, or delete the layers that make it",
    "W102": "pad at most (kernel - 1) // 2 * dilation: more only adds zeros around the border",
    "W103": "give both merged paths the same padding and strides",
    "I100": "nothing to fix: the layers after it see the whole input",
    "I101": "round channels to a multiple of 8 for GPU tensor cores (it does not matter on CPUs)",
    "I102": "nothing to fix: the reported field is an upper bound, exact for uniform windows",
    "I103": "nothing to fix: import the library from a network spec to check its blocks in use",
    "I104": "declare one of the sizes named (`cnndsl sizes SPEC` lists every size that fits), or change the layers",
}


@dataclass(frozen=True)
class Location:
    """A position in a source file; line and col are 1-based, end_col is exclusive."""

    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class SourceText(Protocol):
    """A file diagnostics quote from (`syntax.source.SourceFile`)."""

    def line(self, number: int) -> str: ...


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    location: Location | None
    hint: str | None = None
    notes: tuple[str, ...] = ()
    excerpt: str = ""  # the source line at `location`, as read (renderers escape and cut it)

    def quoting(self, sources: Mapping[str, SourceText]) -> Diagnostic:
        """This diagnostic with the line it points at, when it has none yet and `sources` holds its file."""
        loc = self.location
        if self.excerpt or loc is None or loc.file not in sources:
            return self
        return replace(self, excerpt=sources[loc.file].line(loc.line))

    @property
    def severity(self) -> Severity:
        return CODES[self.code].severity

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def headline(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.severity.value}[{self.code}]: {self.message}"


class CheckingStopped(Exception):
    """Raised by a sink at its error limit: the rest of the spec is not checked (and not worth checking
    until the first errors are fixed). Callers catch it and report what the sink holds."""


@dataclass
class DiagnosticSink:
    """Collects diagnostics of a run; duplicates (same code, place and message) are kept once, so a
    mistake inside a block called many times is reported once.

    With `max_errors`, the error that reaches it stops the run (CheckingStopped). At most
    `max_per_line` diagnostics are kept for one source line: 20,000 mistakes on one line are one mistake
    repeated, and printing each would quote the line 20,000 times. Warnings and notes are kept up to
    `max_per_code` of each code (10,000 unused tensors are one habit, not 10,000 findings).
    """

    items: list[Diagnostic] = field(default_factory=list)
    # The files of this run, by the path diagnostics show: each diagnostic kept quotes its line from here.
    sources: dict[str, SourceText] = field(default_factory=dict)
    max_errors: int | None = None
    max_per_line: int = DEFAULT_LIMITS.per_line
    max_per_code: int = DEFAULT_LIMITS.per_code
    stopped: str | None = None  # why checking stopped early, when it did
    _seen: set[tuple[str, Location | None, str]] = field(default_factory=set)
    _per_line: dict[tuple[str, int], int] = field(default_factory=dict)
    _per_code: dict[str, int] = field(default_factory=dict)
    _errors: int = 0

    def add(self, diagnostic: Diagnostic) -> None:
        key = (diagnostic.code, diagnostic.location, diagnostic.message)
        if key in self._seen:
            return
        loc = diagnostic.location
        if loc is not None:
            on_line = self._per_line.get((loc.file, loc.line), 0) + 1
            self._per_line[(loc.file, loc.line)] = on_line
            if on_line > self.max_per_line:
                return
            if on_line == self.max_per_line:
                diagnostic = _with_note(diagnostic, "further diagnostics on this line are not shown")
        if not diagnostic.is_error:
            of_code = self._per_code[diagnostic.code] = self._per_code.get(diagnostic.code, 0) + 1
            if of_code > self.max_per_code:
                return
            if of_code == self.max_per_code:
                diagnostic = _with_note(diagnostic, f"further {diagnostic.code} diagnostics are not shown")
        self._seen.add(key)
        self.items.append(diagnostic.quoting(self.sources))
        if diagnostic.is_error:
            self._errors += 1
            if self.max_errors is not None and self._errors >= self.max_errors:
                self.stop(f"checking stopped after {self._errors} errors: fix these and run again")

    def full_at(self, location: Location) -> bool:
        """Whether a diagnostic at `location` would be dropped (its line has its share): callers skip the
        work of describing it, such as a did-you-mean search."""
        return self._per_line.get((location.file, location.line), 0) >= self.max_per_line

    def stop(self, reason: str) -> None:
        """End the run here: the last diagnostic carries the reason, and CheckingStopped unwinds."""
        self.stopped = reason
        if self.items:
            self.items[-1] = _with_note(self.items[-1], reason)
        raise CheckingStopped(reason)

    def emit(self, code: str, message: str, location: Location | None, hint: str | None = None,
             notes: tuple[str, ...] = ()) -> None:
        assert code in CODES, code
        self.add(Diagnostic(code, message, location, hint, notes))

    def extend(self, diagnostics: list[Diagnostic]) -> None:
        for d in diagnostics:
            self.add(d)

    @property
    def has_errors(self) -> bool:
        return self._errors > 0

    def raise_if_errors(self) -> None:
        if self.has_errors:
            raise SpecError(self.sorted())

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=_sort_key)


def _with_note(diagnostic: Diagnostic, note: str) -> Diagnostic:
    return replace(diagnostic, notes=(*diagnostic.notes, note))


def _sort_key(d: Diagnostic) -> tuple[int, str, int, int]:
    rank = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}[d.severity]
    loc = d.location
    return (rank, loc.file if loc else "", loc.line if loc else 0, loc.col if loc else 0)


class SpecError(Exception):
    """A spec has errors. Carries every diagnostic of the failing stage (warnings included)."""

    def __init__(self, diagnostics: list[Diagnostic], partial: Any = None):
        self.diagnostics = diagnostics
        # What was built despite the errors (a Graph whose layers that checked have their facts), for a
        # report of those layers; None when nothing was (a file that does not parse).
        self.partial = partial
        errors = [d for d in diagnostics if d.is_error]
        super().__init__("\n".join(d.headline() for d in errors) or "spec error")


class UsageError(Exception):
    """The command line or the environment is wrong (exit code 2), e.g. a missing file."""

    def __init__(self, message: str, diagnostic: Diagnostic | None = None):
        self.diagnostic = diagnostic
        super().__init__(message)


def did_you_mean(name: str, candidates: Iterable[str], most: int = DEFAULT_LIMITS.suggestion_candidates) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close. Only names of about the same
    length are compared, at most `most` of them: a hint is a convenience, and difflib over every name of
    a 3,000-tensor spec for each of 3,000 errors took 41 s."""
    import difflib

    near = sorted(c for c in candidates if abs(len(c) - len(name)) <= max(2, len(name) // 2))
    if len(near) > most:
        return None
    close = difflib.get_close_matches(name, near, n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"
