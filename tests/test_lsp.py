"""`cnndsl lsp` driven over stdio by a real LSP client (pygls' LanguageClient, in another process): the
protocol's framing, positions in UTF-16 units, and the answers: diagnostics as `check` locates them,
hover, definition, completion and symbols; and the same features as functions of a document."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types as lsp

from cnndsl.lsp.client import start
from cnndsl.lsp.features import analyse, completion, definition, hover, import_statement, symbols
from tests.conftest import SPECS

BROKEN = """# a small network with one mistake
input x: 3 x 32 x 32
block stage(c) {
    y = in -> conv(c, 3, padding=1) -> relu
    return y
}
h = x -> stage(16) as s1
output y = h -> conv(8, 3, strid=2) -> relu
"""


async def answer(request: Any) -> Any:
    """A request's answer, within a minute (a server that hangs fails the test instead of hanging it)."""
    return await asyncio.wait_for(request, 60)


async def session(tmp_path: Path) -> dict[str, object]:
    spec = tmp_path / "net.cnn"
    spec.write_text(BROKEN)
    uri = spec.as_uri()
    client, published = await start("cnndsl-test")
    try:
        result = await asyncio.wait_for(client.initialize_async(lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(), root_uri=tmp_path.as_uri())), 60)
        client.initialized(lsp.InitializedParams())
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri=uri, language_id="cnn", version=1, text=BROKEN)))
        first = await asyncio.wait_for(published.get(), 60)
        position = lsp.TextDocumentIdentifier(uri)
        hovered = await answer(client.text_document_hover_async(lsp.HoverParams(position, lsp.Position(3, 15))))
        defined = await answer(client.text_document_definition_async(lsp.DefinitionParams(position,
                                                                                           lsp.Position(7, 11))))
        block = await answer(client.text_document_definition_async(lsp.DefinitionParams(position, lsp.Position(6, 10))))
        completed = await answer(client.text_document_completion_async(lsp.CompletionParams(position,
                                                                                            lsp.Position(7, 28))))
        outline = await answer(client.text_document_document_symbol_async(lsp.DocumentSymbolParams(position)))
        fixed = BROKEN.replace("strid=2", "stride=2")
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(version=2, uri=uri),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=fixed)]))
        second = await asyncio.wait_for(published.get(), 60)
        await answer(client.shutdown_async(None))
    finally:
        client.exit(None)
        await answer(client.stop())
    return {"capabilities": result.capabilities, "first": first, "hover": hovered, "definition": defined,
            "block": block, "completion": completed, "symbols": outline, "second": second, "uri": uri}


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return asyncio.run(session(tmp_path_factory.mktemp("lsp")))


def test_the_server_publishes_check_diagnostics_at_their_line_and_column(answers: dict) -> None:
    capabilities = answers["capabilities"]
    assert capabilities.hover_provider and capabilities.definition_provider and capabilities.completion_provider
    (error,) = [d for d in answers["first"].diagnostics if d.severity == lsp.DiagnosticSeverity.Error]
    assert error.code == "E203" and "strid" in error.message and "did you mean `stride`" in error.message
    # `check` puts it at 8:28 (1-based: `strid`); the protocol counts from 0
    assert (error.range.start.line, error.range.start.character) == (7, BROKEN.splitlines()[7].index("strid"))
    assert error.source == "cnndsl"
    assert answers["second"].version == 2 and not [d for d in answers["second"].diagnostics
                                                   if d.severity == lsp.DiagnosticSeverity.Error]


def test_hover_definition_completion_and_symbols_over_the_protocol(answers: dict) -> None:
    text = answers["hover"].contents.value
    assert "`s1.conv1`" in text and "16 x 32 x 32" in text and "448 params" in text and "receptive field 3" in text
    (tensor,) = answers["definition"]
    assert tensor.uri == answers["uri"] and tensor.range.start.line == 6  # `h` is assigned on line 7
    (block,) = answers["block"]
    assert block.range.start == lsp.Position(2, 6)  # `stage` defined on line 3, column 7
    labels = {item.label for item in answers["completion"].items}
    assert {"stride=", "padding=", "groups=", "bias="} <= labels
    names = [(s.name, s.kind) for s in answers["symbols"]]
    assert ("x", lsp.SymbolKind.Variable) in names and ("stage", lsp.SymbolKind.Function) in names
    assert ("y", lsp.SymbolKind.Variable) in names


# ---- the features as functions ------------------------------------------------------------------------
def test_hover_lists_every_instance_of_a_block_layer() -> None:
    spec = SPECS / "lib" / "resnet_basic.cnn"
    net = SPECS / "resnet18.cnn"
    doc = analyse(net.read_text(), net.resolve())
    text = hover(doc, 10, 28)
    assert text is not None and "11,689,512 params" in text and "output 1000" in text
    unet = SPECS / "unet.cnn"
    doc = analyse(unet.read_text(), unet.resolve())
    line = next(i for i, text in enumerate(unet.read_text().splitlines(), 1) if "block double_conv" in text)
    conv_line = line + 1
    col = unet.read_text().splitlines()[conv_line - 1].index("conv(") + 2
    text = hover(doc, conv_line, col)
    assert text is not None and "9 instances" in text and "`double_conv1.conv1`" in text
    assert spec.exists()


def test_definition_reaches_blocks_in_imported_files() -> None:
    net = SPECS / "resnet34.cnn"
    doc = analyse(net.read_text(), net.resolve())
    line = next(i for i, text in enumerate(net.read_text().splitlines(), 1) if "resnet(" in text)
    col = net.read_text().splitlines()[line - 1].index("resnet(") + 2
    (found,) = definition(doc, line, col)
    assert found.path.endswith("lib/resnet_basic.cnn")
    line = next(i for i, text in enumerate(net.read_text().splitlines(), 1) if text.startswith("import"))
    (imported,) = definition(doc, line, 10)
    assert imported.path.endswith("lib/resnet_basic.cnn") and imported.line == 1


@pytest.mark.parametrize(("before", "expected"), [
    ("output y = x -> conv(8, 3, padding=", {"same", "valid"}),
    ("output y = x -> conv(8, 3, groups=", {"depthwise"}),
    ("output y = x -> conv(8, 3, bias=", {"true", "false"}),
    ("output y = x -> layernorm(over=", {"channels"}),
])
def test_completion_of_keyword_values(before: str, expected: set[str]) -> None:
    text = f"input x: 3 x 8 x 8\n{before}"
    doc = analyse(text, Path("/nonexistent/t.cnn"))
    labels = {item.label for item in completion(doc, 2, len(before) + 1)}
    assert expected <= labels


def test_completion_in_a_chain_offers_ops_blocks_and_tensors() -> None:
    text = ("input x: 3 x 8 x 8\nblock cbr(c) {\n    return in -> conv(c, 3) -> relu\n}\nh = x -> cbr(8)\n"
            "output y = h -> ")
    doc = analyse(text, Path("/nonexistent/t.cnn"))
    items = {item.label: item.kind for item in completion(doc, 6, 17)}
    assert items["conv"] == "op" and items["maxpool"] == "op" and items["cbr"] == "block" and items["h"] == "tensor"


def test_symbols_outline_a_spec() -> None:
    net = SPECS / "unet.cnn"
    doc = analyse(net.read_text(), net.resolve())
    kinds = {(s.name, s.kind) for s in symbols(doc)}
    assert {("image", "input"), ("double_conv", "block"), ("mask", "output")} <= kinds or \
        {("image", "input"), ("double_conv", "block")} <= kinds


def test_a_document_that_does_not_parse_still_answers() -> None:
    doc = analyse("input x: 3 x 8 x 8\noutput y = x -> conv(8, 3\n", Path("/nonexistent/t.cnn"))
    assert [d.code for d in doc.diagnostics] == ["E101"]
    assert hover(doc, 2, 18) is None  # no graph to read
    (x,) = definition(doc, 2, 12)  # the `x` being fed: its input declaration
    assert (x.line, x.col) == (1, 7)
    assert [s.name for s in symbols(doc)] == ["x"]  # the broken statement blanked, the rest still outlined
    assert {item.label for item in completion(doc, 2, 24)} >= {"stride=", "padding="}


def test_hover_on_a_block_call_shows_each_instance() -> None:
    doc = analyse(BROKEN.replace("strid=2", "stride=2"), Path("/nonexistent/net.cnn"))
    text = hover(doc, 7, 11)  # `stage(16) as s1`
    assert text is not None and "**stage** (block)" in text
    assert "`s1`: output 16 x 32 x 32, 2 layers, 448 params" in text
    assert "`x`: input, output 3 x 32 x 32" in (hover(doc, 2, 8) or "")


def test_a_diagnostic_in_an_imported_file_is_placed_at_the_import(tmp_path: Path) -> None:
    (tmp_path / "lib.cnn").write_text("block cbr(c) {\n    return in -> conv(c, 3, strid=1) -> relu\n}\n")
    (tmp_path / "mid.cnn").write_text('import "lib.cnn"\n')
    text = 'network n\nimport "mid.cnn"\ninput x: 3 x 8 x 8\noutput y = x -> cbr(4)\n'
    doc = analyse(text, tmp_path / "net.cnn")
    (error,) = [d for d in doc.diagnostics if d.is_error]
    assert error.code == "E203" and error.location is not None and error.location.file.endswith("lib.cnn")
    where = import_statement(doc, error.location.file)  # through mid.cnn: the document's import of mid.cnn
    assert where is not None and (where.line, where.col) == (2, 1)
