"""What the language server answers, as plain functions of a document's text: diagnostics, hover,
definitions, completion and symbols. Positions here are 1-based lines and columns counted in characters
(as diagnostics locate them); cnndsl/lsp/server.py converts to and from the protocol's.

A document is checked as `cnndsl check` checks it (its imports resolved beside its file), and the graph
it expands to, even one with errors, is what hover reads: a layer's output shape, parameters, MACs and
receptive field, for every instance of a block's layer.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import loads
from ..diagnostics import Diagnostic, SpecError, UsageError
from ..graph.model import INPUT, Graph
from ..layout import fmt_shape
from ..ops import REGISTRY, lookup
from ..report.model import Report
from ..syntax import ast as A
from ..syntax.parse import blank_statement, parse
from ..syntax.source import SourceFile

WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
SHOWN_INSTANCES = 4  # instances of a block's layer listed in a hover


@dataclass
class Definition:
    """Where a name is defined: its file and the span of the name (1-based, end exclusive)."""

    path: str
    line: int
    col: int
    end_line: int
    end_col: int


@dataclass
class Symbol:
    name: str
    kind: str  # block, input, output, const, tensor, network
    detail: str
    span: Definition  # the whole statement
    selection: Definition  # the name
    children: list[Symbol] = field(default_factory=list)


@dataclass
class Completion:
    label: str
    kind: str  # op, block, keyword, value, tensor, const
    detail: str = ""
    insert: str | None = None


@dataclass
class Document:
    """One checked text: its diagnostics, syntax tree and graph (None where they could not be made)."""

    path: Path
    text: str
    diagnostics: list[Diagnostic]
    module: A.Module | None
    graph: Graph | None
    _report: Report | None = None
    _scope: _Scope | None = None
    _imported: list[_Scope] | None = None

    @property
    def scope(self) -> _Scope:
        """The names this document defines (none where it does not parse)."""
        if self._scope is None:
            self._scope = _scope(self.module, self.path) if self.module else _Scope()
        return self._scope

    @property
    def imported(self) -> list[_Scope]:
        """The names of the files it imports, and theirs, each file read and parsed once per document."""
        if self._imported is None:
            self._imported = _imported_scopes(self.scope, {self.path.resolve()})
        return self._imported

    @property
    def report(self) -> Report | None:
        if self._report is None and self.graph is not None:
            from ..report.assemble import build_report

            try:
                self._report = build_report(self.graph, [], "torchvision", 1)
            except Exception:  # a graph with errors may lack facts a total needs; hover then shows shapes only
                return None
        return self._report


def analyse(text: str, path: Path) -> Document:
    """Check `text` as the file `path` (its imports resolved beside it), keeping what was built."""
    graph, diagnostics = None, []
    try:
        network = loads(text, name=path.name, base=path.parent)
        graph, diagnostics = network.graph, network.diagnostics
    except SpecError as exc:
        diagnostics, graph = exc.diagnostics, exc.partial
    except UsageError as exc:  # too large, binary: the reading checks of a file
        diagnostics = [exc.diagnostic] if exc.diagnostic else []
    return Document(path, text, diagnostics, _module(text, path), graph)


def _module(text: str, path: Path, attempts: int = 4) -> A.Module | None:
    """The syntax tree of `text`; while it does not parse (a statement being typed), of the text with the
    broken statements blanked out, as the parser resynchronises: the rest still has its names."""
    for _ in range(attempts):
        try:
            return parse(SourceFile(str(path), text))
        except SpecError as exc:
            located = [d.location.line for d in exc.diagnostics if d.location is not None]
            blanked = blank_statement(text, located[0]) if located else text
            if blanked == text:
                return None
            text = blanked
    return None


# ---- hover -------------------------------------------------------------------------------------------
def hover(doc: Document, line: int, col: int) -> str | None:
    """Markdown for what is under (line, col): a layer (every instance), a block call, a tensor, an input,
    an op or block name."""
    if doc.graph is None:
        return None
    layer = _innermost(_layers(doc.module), line, col) if doc.module else None
    word = word_at(doc.text, line, col)
    if layer is not None:
        callee = layer.call.callee.name
        if callee in REGISTRY:
            nodes = [n for n in doc.graph.nodes() if n.op != INPUT and _at(n.location, doc.path, layer.call)]
            if nodes:
                return _layer_hover(doc, callee, [n.name for n in nodes])
        else:
            text = _instance_hover(doc, callee, layer)
            if text:
                return text
    if word is None:
        return None
    tensor = _tensor_nodes(doc, word, line, col)
    if tensor:
        return _layer_hover(doc, word, tensor, tensor=True)
    op = lookup(word)
    return f"**{word}**: {op.summary}" if op is not None else None


def _layer_hover(doc: Document, title: str, names: list[str], tensor: bool = False) -> str:
    rows = {row.name: row for row in doc.report.layers} if doc.report else {}
    lines = [f"**{title}**" + (" (tensor)" if tensor else "") +
             (f": {len(names)} instances" if len(names) > 1 else "")]
    for name in names[:SHOWN_INSTANCES]:
        facts = doc.graph.checked(name) if doc.graph else None
        if facts is None:
            lines.append(f"- `{name}`: not checked (an error before or at it)")
            continue
        row = rows.get(name)
        detail = f"- `{name}`: {facts.label}, output {fmt_shape(facts.shape)}"
        if row is not None:
            detail += f", {row.params:,} params, {row.macs:,} MACs"
            if row.rf is not None:
                detail += (f", receptive field {_axes(row.rf.size)} (stride {_axes(row.rf.stride)}, padding "
                           f"{_axes(row.rf.padding)})")
        lines.append(detail)
    if len(names) > SHOWN_INSTANCES:
        lines.append(f"- ... and {len(names) - SHOWN_INSTANCES} more")
    return "\n".join(lines)


def _axes(values: Any) -> str:
    """A per-axis value as reports print it: one number when every axis has it."""
    values = list(values) if isinstance(values, list | tuple) else [values]
    return str(values[0]) if len(set(map(str, values))) == 1 else " x ".join(map(str, values))


def _instance_hover(doc: Document, block: str, layer: A.Layer) -> str | None:
    """A block call: each instance it made, with the tensor it returns and its layers' params and MACs."""
    assert doc.graph is not None
    # the trail's entry for this call: "in block `stage` called as `s1` at net.cnn:7:10" (or "called at")
    opening, ending = f"in block `{block}` called ", f" at {doc.path}:{layer.call.line}:{layer.call.col}"
    instances: dict[str, Any] = {}
    marked = [node.name for node in doc.graph.nodes()
              if any(entry.startswith(opening) and entry.endswith(ending) for entry in node.trail)]
    for name in marked:
        for instance in doc.graph.enclosing(name):
            if instance.kind == block:
                instances.setdefault(instance.name, instance)
    rows = {row.name: row for row in doc.report.layers} if doc.report else {}
    if not instances and marked:  # `as _`: its layers are the caller's, with no instance of their own
        inner = [rows[name] for name in marked if name in rows]
        facts = doc.graph.checked(marked[-1])
        shape = fmt_shape(facts.shape) if facts else "not checked"
        return (f"**{block}** (block, its layers named in the caller's scope): output {shape}, {len(marked)} layers, "
                f"{sum(r.params for r in inner):,} params, {sum(r.macs for r in inner):,} MACs")
    if not instances:
        return None
    lines = [f"**{block}** (block)" + (f": {len(instances)} instances" if len(instances) > 1 else "")]
    for name, instance in list(instances.items())[:SHOWN_INSTANCES]:
        inner = [row for key, row in rows.items() if key.startswith(name + ".")]
        facts = doc.graph.checked(instance.output)
        shape = fmt_shape(facts.shape) if facts else "not checked"
        lines.append(f"- `{name}`: output {shape}, {len(inner)} layers, {sum(r.params for r in inner):,} params, "
                     f"{sum(r.macs for r in inner):,} MACs")
    if len(instances) > SHOWN_INSTANCES:
        lines.append(f"- ... and {len(instances) - SHOWN_INSTANCES} more")
    return "\n".join(lines)


def _tensor_nodes(doc: Document, word: str, line: int, col: int) -> list[str]:
    """The nodes a tensor name at (line, col) stands for (one per instance of the block it is in)."""
    assert doc.graph is not None
    where = definition(doc, line, col)
    if not where or where[0].path != str(doc.path):
        return []
    target = where[0]
    found = [node for node, (name, loc) in doc.graph.tensor_names.items()
             if name == word and loc.file == str(doc.path) and loc.line == target.line and loc.col == target.col]
    if not found and word in doc.graph.inputs:
        found = [doc.graph.inputs[word]]
    return found


def _at(location: Any, path: Path, span: A.Node) -> bool:
    return location.file == str(path) and location.line == span.line and location.col == span.col


def _contains(span: A.Node, line: int, col: int) -> bool:
    return (span.line, span.col) <= (line, col) < (span.end_line, span.end_col)


def _layers(module: A.Module | None) -> list[A.Layer]:
    found: list[A.Layer] = []

    def chains(statements: tuple[Any, ...]) -> None:
        for stmt in statements:
            chain = getattr(stmt, "chain", None)
            if chain is not None:
                found.extend(chain.layers)
            if isinstance(stmt, A.BlockDef):
                chains(stmt.body)
            elif isinstance(stmt, A.If):
                chains(stmt.then)
                chains(stmt.otherwise)

    chains(module.statements if module else ())
    return found


def _innermost(layers: list[A.Layer], line: int, col: int) -> A.Layer | None:
    inside = [layer for layer in layers if _contains(layer.call, line, col)]
    return min(inside, key=lambda layer: (layer.call.end_line - layer.call.line, layer.call.end_col - layer.call.col),
               default=None)


def word_at(text: str, line: int, col: int) -> str | None:
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    for match in WORD.finditer(lines[line - 1]):
        if match.start() <= col - 1 <= match.end():  # on the word, or just after it
            return match.group()
    return None


# ---- definitions -------------------------------------------------------------------------------------
@dataclass
class _Scope:
    """Names defined in a file: blocks and constants at the top, tensors per block (None: the network)."""

    blocks: dict[str, Definition] = field(default_factory=dict)
    consts: dict[str, Definition] = field(default_factory=dict)
    tensors: dict[A.BlockDef | None, dict[str, Definition]] = field(default_factory=dict)
    imports: list[tuple[A.Import, Path]] = field(default_factory=list)


def _span(path: Path, node: A.Node) -> Definition:
    return Definition(str(path), node.line, node.col, node.end_line, node.end_col)


def _scope(module: A.Module, path: Path) -> _Scope:
    scope = _Scope()

    def tensors(statements: tuple[Any, ...], owner: A.BlockDef | None) -> None:
        names = scope.tensors.setdefault(owner, {})
        for stmt in statements:
            if isinstance(stmt, A.Assign):
                names.setdefault(stmt.target.name, _span(path, stmt.target))
            elif isinstance(stmt, A.InputDecl | A.OutputAssign):
                names.setdefault(stmt.name.name, _span(path, stmt.name))
            elif isinstance(stmt, A.BlockInputs):
                for ident in stmt.names:
                    names.setdefault(ident.name, _span(path, ident))
            elif isinstance(stmt, A.Const):
                (scope.consts if owner is None else names).setdefault(stmt.name.name, _span(path, stmt.name))
            elif isinstance(stmt, A.If):
                tensors(stmt.then, owner)
                tensors(stmt.otherwise, owner)
            elif isinstance(stmt, A.BlockDef):
                scope.blocks.setdefault(stmt.name.name, _span(path, stmt.name))
                tensors(stmt.body, stmt)
                for param in stmt.params:
                    scope.tensors[stmt].setdefault(param.name.name, _span(path, param.name))
            elif isinstance(stmt, A.Import):
                scope.imports.append((stmt, path.parent / stmt.path))

    tensors(module.statements, None)
    return scope


def _imported_scopes(scope: _Scope, seen: set[Path]) -> list[_Scope]:
    """The scopes of the files `scope` imports, and theirs (each file once; unreadable ones skipped)."""
    found = []
    for _, target in scope.imports:
        resolved = target.resolve()
        if resolved in seen or not resolved.is_file():
            continue
        seen.add(resolved)
        inner = _scope_of_file(target)
        if inner is not None:
            found += [inner, *_imported_scopes(inner, seen)]
    return found


def _enclosing_block(module: A.Module, line: int, col: int) -> A.BlockDef | None:
    return next((stmt for stmt in module.statements if isinstance(stmt, A.BlockDef) and _contains(stmt, line, col)),
                None)


def definition(doc: Document, line: int, col: int) -> list[Definition]:
    """Where the name at (line, col) is defined: a tensor (in its block, else the network), a constant, a
    block (here or in an imported file), or the file an import names."""
    if doc.module is None:
        return []
    scope = doc.scope
    for stmt, target in scope.imports:
        if _contains(stmt, line, col) and target.is_file():
            return [Definition(str(target), 1, 1, 1, 1)]
    word = word_at(doc.text, line, col)
    if word is None:
        return []
    local = scope.tensors.get(_enclosing_block(doc.module, line, col), {})  # a block sees its own tensors
    for candidates in (local, scope.consts, scope.blocks):
        if word in candidates:
            return [candidates[word]]
    for imported in doc.imported:
        for candidates in (imported.blocks, imported.consts):
            if word in candidates:
                return [candidates[word]]
    return []


def import_statement(doc: Document, file: str) -> Definition | None:
    """The import of this document through which `file` was read: the one naming it, else the first whose
    file imports it in turn (where a diagnostic in an imported file is shown)."""
    target = Path(file).resolve()
    scope = doc.scope
    for stmt, imported in scope.imports:
        if imported.resolve() == target:
            return _span(doc.path, stmt)
    for stmt, imported in scope.imports:
        inner = _scope_of_file(imported)
        if inner is not None and any(path.resolve() == target for s in [inner, *_imported_scopes(inner, set())]
                                     for _, path in s.imports):
            return _span(doc.path, stmt)
    return None


def _scope_of_file(path: Path) -> _Scope | None:
    try:
        return _scope(parse(SourceFile(str(path), path.read_text(encoding="utf-8"))), path)
    except (SpecError, OSError, UnicodeDecodeError):
        return None


# ---- completion --------------------------------------------------------------------------------------
def completion(doc: Document, line: int, col: int) -> list[Completion]:
    """Op and block names in a chain; inside an op's parentheses its keyword arguments, and after `name=`
    the values that keyword takes by name (`padding=same`, `groups=depthwise`, `bias=false`)."""
    before = _text_before(doc.text, line, col)
    call = _open_call(before)
    if call is not None:
        op = REGISTRY.get(call)
        keyword = re.search(r"([A-Za-z_][A-Za-z_0-9]*)\s*=\s*[A-Za-z_]*$", before)
        if op is not None and keyword is not None:
            return [Completion(value, "value", f"{call}({keyword.group(1)}=...)")
                    for value in keyword_values(op.Params, keyword.group(1))]
        if op is not None:
            return [Completion(f"{name}=", "keyword", _describe(op, name), f"{name}=")
                    for name in op.Params.argument_names() if name not in op.positional[:1]]
        return _names_in_scope(doc, line, col)
    items = [Completion(name, "op", op.summary) for name, op in sorted(REGISTRY.items())]
    blocks = dict(doc.scope.blocks)
    for imported in doc.imported:
        for name, where in imported.blocks.items():
            blocks.setdefault(name, where)
    items += [Completion(name, "block", f"block in {Path(where.path).name}") for name, where in sorted(blocks.items())]
    return items + _names_in_scope(doc, line, col)


def _names_in_scope(doc: Document, line: int, col: int) -> list[Completion]:
    if doc.module is None:
        return []
    tensors = doc.scope.tensors.get(_enclosing_block(doc.module, line, col), {})
    return ([Completion(name, "tensor") for name in sorted(tensors)] +
            [Completion(name, "const") for name in sorted(doc.scope.consts)])


def _text_before(text: str, line: int, col: int) -> str:
    lines = text.splitlines()
    return "\n".join([*lines[:line - 1], lines[line - 1][:col - 1] if line <= len(lines) else ""])


def _open_call(before: str) -> str | None:
    """The name of the call whose parentheses the text ends inside, if any."""
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        char = before[i]
        if char == ")":
            depth += 1
        elif char == "(":
            if depth == 0:
                match = re.search(r"([A-Za-z_][A-Za-z_0-9]*)\s*$", before[:i])
                return match.group(1) if match else None
            depth -= 1
        elif char == "\n" and depth == 0 and not before[:i].rstrip().endswith((",", "(")):
            return None
    return None


def keyword_values(params: type[Any], name: str) -> list[str]:
    """The names a keyword argument accepts as values: the literals of its type, true/false for a bool."""
    info = params.model_fields.get(name)
    if info is None:
        return []
    found: list[str] = []

    def walk(annotation: Any) -> None:
        origin = typing.get_origin(annotation)
        if annotation is bool:
            found.extend(["true", "false"])
        elif origin is typing.Literal:
            found.extend(str(value) for value in typing.get_args(annotation) if isinstance(value, str))
        else:
            for inner in typing.get_args(annotation):
                walk(inner)

    walk(info.annotation)
    return list(dict.fromkeys(found))


def _describe(op: Any, name: str) -> str:
    described = op.descriptions.get(name)
    default = op.Params.model_fields[name].default
    shown = "" if default is None or repr(default) == "PydanticUndefined" else f" (default {_value(default)})"
    return (described or "") + shown


def _value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# ---- symbols -----------------------------------------------------------------------------------------
def symbols(doc: Document) -> list[Symbol]:
    """The outline: the network's name, constants, inputs, blocks (with their inner tensors), outputs."""
    if doc.module is None:
        return []
    path, found = doc.path, []
    for stmt in doc.module.statements:
        if isinstance(stmt, A.NetworkName):
            found.append(Symbol(stmt.name.name, "network", "network", _span(path, stmt), _span(path, stmt.name)))
        elif isinstance(stmt, A.Const):
            found.append(Symbol(stmt.name.name, "const", "const", _span(path, stmt), _span(path, stmt.name)))
        elif isinstance(stmt, A.InputDecl):
            found.append(Symbol(stmt.name.name, "input", "input", _span(path, stmt), _span(path, stmt.name)))
        elif isinstance(stmt, A.OutputAssign):
            found.append(Symbol(stmt.name.name, "output", "training output" if stmt.training else "output",
                                _span(path, stmt), _span(path, stmt.name)))
        elif isinstance(stmt, A.Assign):
            found.append(Symbol(stmt.target.name, "tensor", "tensor", _span(path, stmt), _span(path, stmt.target)))
        elif isinstance(stmt, A.BlockDef):
            params = ", ".join(p.name.name for p in stmt.params)
            inner = [Symbol(s.target.name, "tensor", "tensor", _span(path, s), _span(path, s.target))
                     for s in stmt.body if isinstance(s, A.Assign)]
            found.append(Symbol(stmt.name.name, "block", f"block({params})", _span(path, stmt),
                                _span(path, stmt.name), inner))
    return found
