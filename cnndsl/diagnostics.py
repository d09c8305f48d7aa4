"""Located diagnostics: one format for every error, warning and note cnndsl reports.

Every diagnostic carries a ``Code`` (documented in docs/diagnostics.md, generated from this
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


class Category(StrEnum):
    """What part of the pipeline a code belongs to (docs/diagnostics.md groups them so)."""

    SYNTAX = "files and syntax"
    NAMES = "names and arguments"
    SHAPES = "shapes"
    GRAPH = "graph"
    IMPORTS = "imports and blocks"
    BACKENDS = "backends"
    IMPORTERS = "importers"
    LINTS = "lints"


class Code(StrEnum):
    """Every diagnostic code, with what it means: severity, category, title, a one-line example that
    triggers it and what usually fixes it (`cnndsl explain CODE`, docs/diagnostics.md). A Code is its
    string (`Code.E300 == "E300"`), so reports and JSON show the code itself."""

    severity: Severity
    category: Category
    meaning: str
    example: str
    fix: str

    def __new__(cls, code: str, severity: Severity, category: Category, meaning: str, example: str,
                fix: str) -> Code:
        member = str.__new__(cls, code)
        member._value_ = code
        member.severity, member.category, member.meaning, member.example, member.fix = (severity, category, meaning,
                                                                                        example, fix)
        return member

    E001 = ("E001", Severity.ERROR, Category.SYNTAX, "file cannot be read as a spec", "cnndsl check missing.cnn",
            "give the path of a readable .cnn text file (UTF-8, a regular file)")
    E002 = ("E002", Severity.ERROR, Category.SYNTAX, "empty spec", "(a file with only comments)",
            "declare an input and an output: `input x: 3 x 224 x 224`, `output y = x -> ...`")
    E100 = ("E100", Severity.ERROR, Category.SYNTAX, "syntax error", "x -> conv(16, 3) relu",
            "join layers with `->`; docs/language.md shows every statement")
    E101 = ("E101", Severity.ERROR, Category.SYNTAX, "unexpected end of file", "x -> conv(16, 3",
            "close what the line opened: `)`, `]` or `}`")
    E102 = ("E102", Severity.ERROR, Category.SYNTAX, "nesting too deep", "const c = ((((((1))))))   (past 200 levels)",
            "name intermediate values with `const` instead of nesting")
    E103 = ("E103", Severity.ERROR, Category.SYNTAX, "number out of range", "const c = 99999999999999999999",
            "integers stop at 2^63; shapes and counts that large are not networks")
    E104 = ("E104", Severity.ERROR, Category.SYNTAX, "spec too long", "(a file of more than 150,000 tokens)",
            "split the spec into blocks in files of their own and `import` them")
    E200 = ("E200", Severity.ERROR, Category.NAMES, "unknown layer or block", "x -> convv(16, 3)",
            "check the spelling (docs/ops.md lists the ops), or import the block")
    E201 = ("E201", Severity.ERROR, Category.NAMES, "unknown name", "x -> conv(chanels, 3)",
            "define it first (`const`, a block parameter, an earlier tensor), or fix the spelling")
    E202 = ("E202", Severity.ERROR, Category.NAMES, "duplicate name", "input x: 3 x 32 x 32\ninput x: 1 x 8",
            "give one of them another name (`as name`)")
    E203 = ("E203", Severity.ERROR, Category.NAMES, "unknown argument", "x -> conv(16, 3, strides=2)",
            "use the argument names of docs/ops.md or of the block's parameters")
    E204 = ("E204", Severity.ERROR, Category.NAMES, "missing argument", "x -> conv(16)",
            "give every argument that has no default")
    E205 = ("E205", Severity.ERROR, Category.NAMES, "invalid argument value", "x -> conv(16, 3, stride=0)",
            "use a value in the argument's range (docs/ops.md gives each argument's type)")
    E206 = ("E206", Severity.ERROR, Category.NAMES, "argument given twice or too many positional arguments",
            "x -> conv(16, 3, 1, 1)", "pass each argument once; the later ones by keyword")
    E207 = ("E207", Severity.ERROR, Category.NAMES, "wrong number of inputs", "[a, b] -> relu",
            "merge several tensors first (`[a, b] -> add` or `-> concat`); a repeat takes one input")
    E208 = ("E208", Severity.ERROR, Category.NAMES, "invalid expression", "const c = 7 / 2",
            "divide sizes with `//`; a condition is `true` or `false`")
    E209 = ("E209", Severity.ERROR, Category.NAMES, "invalid network structure", "return x -> relu   (outside a block)",
            "declare `input` and `output` at the top level; `return` only inside a block")
    E210 = ("E210", Severity.ERROR, Category.NAMES, "network too large to expand", "x -> relu x 1000000000",
            "check repeat counts (`x N`) and nested blocks; --max-layers raises the bound")
    E300 = ("E300", Severity.ERROR, Category.SHAPES, "input rank does not fit the layer",
            "x -> conv2d(16, 3)   (x: 1 x 40)",
            "use the op that follows the input's rank (`conv` for 1-D, 2-D and 3-D) or reshape the input")
    E301 = ("E301", Severity.ERROR, Category.SHAPES, "channel mismatch", "[a, b] -> add   (16 vs 32 channels)",
            "make the channels agree: a 1x1 `conv` to match them, or `concat` instead of `add`")
    E302 = ("E302", Severity.ERROR, Category.SHAPES, "spatial size mismatch", "[a, b] -> concat   (28x28 vs 27x27)",
            "make the sizes agree: pad, `crop`, or change a stride")
    E303 = ("E303", Severity.ERROR, Category.SHAPES, "kernel larger than padded input",
            "x -> conv(16, 9)   (x: 3 x 7 x 7)",
            "use a smaller kernel or dilation, add padding, or downsample less before it")
    E304 = ("E304", Severity.ERROR, Category.SHAPES, "non-positive or out-of-range size", "input x: 3 x 0 x 32",
            "every size is a positive integer")
    E305 = ("E305", Severity.ERROR, Category.SHAPES, "groups do not divide channels", "x -> conv(16, 3, groups=5)",
            "choose groups that divide both channel counts (or `groups=depthwise`)")
    E306 = ("E306", Severity.ERROR, Category.SHAPES, "invalid layer configuration", "x -> maxpool(2, padding=2)",
            "follow the layer's constraints (pooling pads at most half its kernel)")
    E400 = ("E400", Severity.ERROR, Category.GRAPH, "tensor used before it is defined (a cycle)",
            "a = b -> relu\nb = a -> relu", "define each tensor before it is used: a network is a graph without cycles")
    E500 = ("E500", Severity.ERROR, Category.IMPORTS, "import not found", "import \"missing.cnn\"",
            "imports are relative to the importing file, or on --import-path / $CNNDSL_PATH")
    E501 = ("E501", Severity.ERROR, Category.IMPORTS, "cyclic import",
            "a.cnn imports \"b.cnn\", which imports \"a.cnn\"",
            "move what both files need into a third file that both import")
    E502 = ("E502", Severity.ERROR, Category.IMPORTS, "block recursion", "block f(c) { return in -> f(c) }",
            "repeat a block with `x N` instead of calling it from itself")
    E503 = ("E503", Severity.ERROR, Category.IMPORTS, "invalid block definition", "block f(c=1, d) { return in }",
            "put parameters with defaults last, and end the block with `return`")
    E600 = ("E600", Severity.ERROR, Category.BACKENDS, "op has no lowering in this backend",
            "cnndsl compile spec.cnn --to tvm   (an op TVM lacks)",
            "compile for the other backend, or use an op it lowers (docs/ops.md)")
    E601 = ("E601", Severity.ERROR, Category.BACKENDS, "weights do not fit the network",
            "cnndsl compile spec.cnn --weights other_model.pt",
            "load weights saved from this network, or rename their keys with --weights-map")
    E700 = ("E700", Severity.ERROR, Category.IMPORTERS, "unknown or malformed section in an imported file",
            "[convolutional2]   (in a Darknet .cfg)",
            "use Darknet's section names (convolutional, maxpool, route, shortcut, ...)")
    E701 = ("E701", Severity.ERROR, Category.IMPORTERS, "unknown key or invalid value in an imported file",
            "filterz=32   (in a Darknet [convolutional])", "use the keys Darknet's parser reads for that section")
    E702 = ("E702", Severity.ERROR, Category.IMPORTERS, "invalid layer reference in an imported file",
            "[route] layers=-200   (in a Darknet .cfg)", "point the route or shortcut at an existing earlier layer")
    E703 = ("E703", Severity.ERROR, Category.IMPORTERS, "a layer or module that a spec cannot express",
            "torch.nonzero(x) in a forward   (cnndsl import torch)",
            "rewrite that part of the source with layers a spec has (docs/ops.md), or leave it out")
    E704 = ("E704", Severity.ERROR, Category.IMPORTERS, "the imported spec does not compute what the source does",
            "an import whose parameter count or outputs differ from the source's",
            "a cnndsl bug: report it with the source; --no-verify writes the spec anyway")
    E705 = ("E705", Severity.ERROR, Category.IMPORTERS, "the source to import cannot be read or built",
            "cnndsl import torch mypackage:missing --input x=3x32x32",
            "check the path or MODULE:CALLABLE, its arguments and the input shapes")
    W100 = ("W100", Severity.WARNING, Category.LINTS, "stride does not fit the input: trailing input is never read",
            "x -> conv(8, 3, stride=3)   (x: 1 x 7 x 7)",
            "pad the input or pick sizes where (input + padding - kernel) is a multiple of the stride")
    W101 = ("W101", Severity.WARNING, Category.LINTS, "unused tensor", "y = x -> relu   (y never used)",
            "use the tensor, or delete the layers that make it")
    W102 = ("W102", Severity.WARNING, Category.LINTS, "padding larger than half the kernel",
            "x -> conv(8, 3, padding=2)",
            "pad at most (kernel - 1) // 2 * dilation: more only adds zeros around the border")
    W103 = ("W103", Severity.WARNING, Category.LINTS, "receptive fields of merged paths are misaligned",
            "[a, b] -> add   (different centres)", "give both merged paths the same padding and strides")
    I100 = ("I100", Severity.INFO, Category.LINTS, "first layer whose receptive field covers the whole input",
            "(reported once per network)", "nothing to fix: the layers after it see the whole input")
    I101 = ("I101", Severity.INFO, Category.LINTS, "convolution channels not a multiple of 8 (tensor cores)",
            "x -> conv(15, 3)", "round channels to a multiple of 8 for GPU tensor cores (it does not matter on CPUs)")
    I102 = ("I102", Severity.INFO, Category.LINTS, "receptive field through adaptive pooling is an upper bound",
            "x -> adaptive_avgpool(7)   (x: 64 x 10 x 10)",
            "nothing to fix: the reported field is an upper bound, exact for uniform windows")
    I103 = ("I103", Severity.INFO, Category.LINTS, "a block library: blocks, no network",
            "block cbr(c) { ... }   (and no input or output)",
            "nothing to fix: import the library from a network spec to check its blocks in use")
    I104 = ("I104", Severity.INFO, Category.LINTS, "input sizes near the declared one that fit",
            "input x: 3 x 570 x 570   (U-Net: 564 and 572 fit)",
            "declare one of the sizes named (`cnndsl sizes SPEC` lists every size that fits), or change the layers")


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
    code: Code
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
        return Code[self.code].severity

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

    def emit(self, code: Code, message: str, location: Location | None, hint: str | None = None,
             notes: tuple[str, ...] = ()) -> None:
        assert code in Code.__members__, code
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


class Option(StrEnum):
    """A setting a message refers to, by what it means (the name of the API's parameter). Messages raised
    below the command line speak of settings by meaning and name the one at fault here; the command line
    shows it as its flag (cli/common.py: FLAGS), a Python caller as the parameter."""

    INPUTS = "inputs"
    CONSTANTS = "constants"
    DEPTH = "depth"
    BATCH = "batch"
    SIZE_RANGE = "low, high"
    AXES = "axes"
    TUNE_DB = "tune_db"
    CUDA_GRAPH = "cuda_graph"
    ROUNDS_DIRECTORY = "directory"
    INGEST = "ingest"
    BUNDLE_LIMIT = "bundle_limit_mib"
    RPC_TRACKER = "rpc_tracker"
    RPC_KEY = "rpc_key"


class UsageError(Exception):
    """The command line or the environment is wrong (exit code 2), e.g. a missing file. `option`: the
    setting at fault, when one is."""

    def __init__(self, message: str, diagnostic: Diagnostic | None = None, option: Option | None = None):
        self.diagnostic, self.option = diagnostic, option
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
