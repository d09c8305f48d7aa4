"""The language server on every keystroke (issue "Edit the network"): how long from a change of a document
to its diagnostics, and how long a hover takes, through the real server over stdio (pygls' client in this
process, `cnndsl lsp` in another). Run by hand: `python benchmarks/lsp_latency.py [spec ...]`.

Each round types one character into the spec (a space at the end of its last line, then deletes it) and
waits for the diagnostics of that version; hovers are asked on a layer in a block that every stage
calls (the answer lists its instances). Reports the median and the slowest of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from lsprotocol import types as lsp

from cnndsl.lsp.client import start as start_server

ROOT = Path(__file__).resolve().parent.parent


async def measure(spec: Path, rounds: int) -> dict[str, list[float]]:
    uri, text = spec.resolve().as_uri(), spec.read_text()
    client, published = await start_server("cnndsl-benchmark")
    times: dict[str, list[float]] = {"open": [], "change": [], "hover": []}
    try:
        await client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities()))
        client.initialized(lsp.InitializedParams())
        start = time.perf_counter()
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri=uri, language_id="cnn", version=1, text=text)))
        await published.get()
        times["open"].append(time.perf_counter() - start)
        lines = text.splitlines()
        last = len(lines) - 1
        for version in range(2, 2 + rounds):
            edited = text + " " if version % 2 == 0 else text
            start = time.perf_counter()
            client.text_document_did_change(lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(version=version, uri=uri),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=edited)]))
            while (await published.get()).version != version:
                pass
            times["change"].append(time.perf_counter() - start)
            start = time.perf_counter()
            await client.text_document_hover_async(lsp.HoverParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(last, 20)))
            times["hover"].append(time.perf_counter() - start)
        await client.shutdown_async(None)
    finally:
        client.exit(None)
        await client.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("specs", nargs="*", default=[str(ROOT / "specs" / "resnet152.cnn"),
                                                     str(ROOT / "specs" / "resnet18.cnn")])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    for spec in map(Path, args.specs):
        times = asyncio.run(measure(spec, args.rounds))
        row = ", ".join(f"{kind} median {1e3 * statistics.median(v):.0f} ms (max {1e3 * max(v):.0f})"
                        for kind, v in times.items())
        print(f"{spec.name}: {row}", flush=True)


if __name__ == "__main__":
    main()
