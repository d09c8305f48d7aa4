"""The language server (`cnndsl lsp`): features.py answers from a document's text, server.py speaks the
protocol (pygls, the `lsp` extra)."""
