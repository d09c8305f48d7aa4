"""`cnndsl lsp`: a language server over stdio, on pygls. Each open document is checked when it opens and
on every change (diagnostics with `check`'s codes and positions); hover, go to definition, completion
and the outline answer from the last check (cnndsl/lsp/features.py).

Positions: the protocol counts characters in UTF-16 code units unless the client agrees to another
encoding; pygls' position codec converts both ways, and features.py counts code points, as the checker
does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from .. import __version__
from ..diagnostics import Diagnostic, Severity
from .features import (
    Completion,
    Definition,
    Document,
    Symbol,
    analyse,
    completion,
    definition,
    hover,
    import_statement,
    symbols,
)

log = logging.getLogger(__name__)

SEVERITIES = {Severity.ERROR: lsp.DiagnosticSeverity.Error, Severity.WARNING: lsp.DiagnosticSeverity.Warning,
              Severity.INFO: lsp.DiagnosticSeverity.Information}
COMPLETION_KINDS = {"op": lsp.CompletionItemKind.Function, "block": lsp.CompletionItemKind.Class,
                    "keyword": lsp.CompletionItemKind.Property, "value": lsp.CompletionItemKind.EnumMember,
                    "tensor": lsp.CompletionItemKind.Variable, "const": lsp.CompletionItemKind.Constant}
SYMBOL_KINDS = {"network": lsp.SymbolKind.Module, "block": lsp.SymbolKind.Function,
                "input": lsp.SymbolKind.Variable, "output": lsp.SymbolKind.Variable,
                "const": lsp.SymbolKind.Constant, "tensor": lsp.SymbolKind.Variable}


class CnnLanguageServer(LanguageServer):
    """The documents' last checks, by URI, kept while the text they were made from is current."""

    def __init__(self) -> None:
        super().__init__("cnndsl", __version__)
        self.checked: dict[str, Document] = {}

    def document(self, uri: str) -> Document:
        text = self.workspace.get_text_document(uri).source
        cached = self.checked.get(uri)
        if cached is None or cached.text != text:
            cached = self.checked[uri] = analyse(text, document_path(uri))
        return cached

    def lines(self, uri: str) -> list[str]:
        return list(self.workspace.get_text_document(uri).lines)

    def to_ours(self, uri: str, position: lsp.Position) -> tuple[int, int]:
        """A protocol position -> our 1-based line and column (in characters)."""
        codec = self.workspace.get_text_document(uri).position_codec
        converted = codec.position_from_client_units(self.lines(uri), position)
        return converted.line + 1, converted.character + 1

    def to_range(self, uri: str, line: int, col: int, end_line: int | None, end_col: int | None) -> lsp.Range:
        """Our 1-based span (end exclusive; a point: to the end of the word) -> a protocol range."""
        lines = self.lines(uri)
        if end_line is None or end_col is None:
            text = lines[line - 1] if 0 < line <= len(lines) else ""
            end_line, end_col = line, col + max(1, len(_word_from(text, col - 1)))
        codec = self.workspace.get_text_document(uri).position_codec
        return codec.range_to_client_units(lines, lsp.Range(lsp.Position(line - 1, col - 1),
                                                            lsp.Position(end_line - 1, end_col - 1)))


def _word_from(text: str, index: int) -> str:
    end = index
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    return text[index:end]


def document_path(uri: str) -> Path:
    """The file a document is (its imports resolve beside it); an unsaved one is `untitled.cnn` here."""
    path = to_fs_path(uri) if uri.startswith("file:") else None
    return Path(path) if path else Path.cwd() / "untitled.cnn"


def to_lsp_diagnostic(server: CnnLanguageServer, uri: str, doc: Document, d: Diagnostic) -> lsp.Diagnostic:
    message = d.message + "".join(f"\n{note}" for note in d.notes) + (f"\nhint: {d.hint}" if d.hint else "")
    loc = d.location
    if loc is None or loc.file != str(doc.path):  # no position, or in an imported file: at its import
        where = import_statement(doc, loc.file) if loc is not None else None
        span = (server.to_range(uri, where.line, where.col, where.end_line, where.end_col) if where is not None
                else lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)))
        prefix = f"{loc}: " if loc is not None else ""
        return lsp.Diagnostic(span, prefix + message, SEVERITIES[d.severity], d.code, source="cnndsl")
    return lsp.Diagnostic(server.to_range(uri, loc.line, loc.col, loc.end_line, loc.end_col), message,
                          SEVERITIES[d.severity], d.code, source="cnndsl")


def build() -> CnnLanguageServer:
    server = CnnLanguageServer()

    def publish(uri: str, version: int | None = None) -> None:
        doc = server.document(uri)
        found = [to_lsp_diagnostic(server, uri, doc, d) for d in doc.diagnostics]
        server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, found, version))

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
        publish(params.text_document.uri, params.text_document.version)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
        publish(params.text_document.uri, params.text_document.version)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: lsp.DidSaveTextDocumentParams) -> None:
        server.checked.clear()  # an imported file may have been saved: check again
        publish(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
        server.checked.pop(params.text_document.uri, None)
        server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(params.text_document.uri, []))

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(params: lsp.HoverParams) -> lsp.Hover | None:
        uri = params.text_document.uri
        text = hover(server.document(uri), *server.to_ours(uri, params.position))
        return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text)) if text else None

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def on_definition(params: lsp.DefinitionParams) -> list[lsp.Location]:
        uri = params.text_document.uri
        return [location(server, uri, found)
                for found in definition(server.document(uri), *server.to_ours(uri, params.position))]

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["(", "=", ",", " "]))
    def on_completion(params: lsp.CompletionParams) -> lsp.CompletionList:
        uri = params.text_document.uri
        items = completion(server.document(uri), *server.to_ours(uri, params.position))
        return lsp.CompletionList(False, [completion_item(item) for item in items])

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def on_symbols(params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        uri = params.text_document.uri
        return [document_symbol(server, uri, symbol) for symbol in symbols(server.document(uri))]

    return server


def location(server: CnnLanguageServer, uri: str, found: Definition) -> lsp.Location:
    target = Path(found.path).resolve().as_uri()
    if target == uri:
        span = server.to_range(uri, found.line, found.col, found.end_line, found.end_col)
    else:  # another file, not open here: columns as characters (the file's lines are not at hand)
        span = lsp.Range(lsp.Position(found.line - 1, found.col - 1),
                         lsp.Position(found.end_line - 1, found.end_col - 1))
    return lsp.Location(target, span)


def completion_item(item: Completion) -> lsp.CompletionItem:
    return lsp.CompletionItem(item.label, kind=COMPLETION_KINDS.get(item.kind), detail=item.detail or None,
                              insert_text=item.insert)


def document_symbol(server: CnnLanguageServer, uri: str, symbol: Symbol) -> lsp.DocumentSymbol:
    span, name = symbol.span, symbol.selection
    return lsp.DocumentSymbol(
        symbol.name, SYMBOL_KINDS[symbol.kind],
        server.to_range(uri, span.line, span.col, span.end_line, span.end_col),
        server.to_range(uri, name.line, name.col, name.end_line, name.end_col), detail=symbol.detail,
        children=[document_symbol(server, uri, child) for child in symbol.children] or None)


def serve(**_: Any) -> None:
    """Serve over stdin and stdout until the client says exit."""
    build().start_io()
