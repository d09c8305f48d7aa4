"""A protocol client for `cnndsl lsp` in another process (pygls' LanguageClient over stdio), with the
diagnostics the server publishes queued: what the tests and benchmarks/lsp_latency.py drive, and a
starting point for scripting the server."""

from __future__ import annotations

import asyncio
import sys

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient


async def start(name: str = "cnndsl-client") -> tuple[LanguageClient, asyncio.Queue[lsp.PublishDiagnosticsParams]]:
    """A client connected to a fresh `cnndsl lsp` (this Python, this cnndsl), and the queue its published
    diagnostics arrive on. Initialize it next; end with shutdown, exit and `stop()`."""
    client = LanguageClient(name, "1")
    published: asyncio.Queue[lsp.PublishDiagnosticsParams] = asyncio.Queue()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
        published.put_nowait(params)

    await client.start_io(sys.executable, "-c", "from cnndsl.cli import run; run()", "lsp")
    return client, published
