"""Worst cases of at most 1 MB for `cnndsl check` (issue: hostile input). Run by hand: `make bench-hostile`
(about a minute). The target: every spec of at most 1 MB checks, or fails with a located error, in at most
5 s and 500 MB. Each case is the shape of input that cost most before the limits (docs/robustness.md):
the figures are whole `cnndsl check` processes (imports included), wall time and peak RSS of the child.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cnndsl.limits import Limits
from cnndsl.syntax.grammar import token_count

CNNDSL = str(Path(sys.executable).parent / "cnndsl")
MB = 1_000_000


def _fill(head: str, line: Callable[[int], str], tail: str = "") -> str:
    """`head`, then numbered lines, then `tail`: as many lines as fit in 1 MB and within the token limit (a
    spec past it stops at once with E104), so that each case does the most work a spec can ask for."""
    budget = Limits().tokens - token_count(head + tail)
    parts, size, i = [head], len(head) + len(tail), 0
    while True:
        text = line(i)
        tokens = token_count(text)
        if size + len(text) > MB or tokens > budget:
            break
        parts.append(text)
        size += len(text)
        budget -= tokens
        i += 1
    return "".join(parts) + tail


CASES: dict[str, Callable[[], str]] = {
    "layer statements, to the token limit": lambda: _fill("input x: 4 x 64 x 64\na0 = x\n",
                                                          lambda i: f"a{i + 1} = a{i} -> relu\n"),
    "one chain, to the token limit": lambda: _fill("input x: 4 x 64 x 64\noutput y = x", lambda i: " -> relu", "\n"),
    "constants, to the token limit": lambda: _fill("", lambda i: f"const c{i} = {i} * 2 + 1\n",
                                      "input x: 1 x 8\noutput y = x -> relu\n"),
    "blank lines": lambda: "input x: 1 x 8\n" + "\n" * (MB - 40) + "output y = x -> relu\n",
    "comment lines": lambda: _fill("input x: 1 x 8\n", lambda i: "# a comment\n", "output y = x -> relu\n"),
    "an expression of 75,000 terms": lambda: "const a = " + "1 + " * 74_990 + "1\ninput x: 1 x 8\noutput y = x\n",
    "75,000 nested parentheses": lambda: "const a = " + "(" * 74_990 + "1" + ")" * 74_990 + "\n",
    "1 MB of parentheses": lambda: "const a = " + "(" * (MB // 2 - 40) + "1" + ")" * (MB // 2 - 40) + "\n",
    "a 1 MB integer": lambda: "const a = " + "9" * (MB - 60) + "\ninput x: 1 x 8\noutput y = x\n",
    "one line of unknown arguments": lambda: _fill("input x: 1 x 8\noutput y = x -> conv(8, 1",
                                                           lambda i: f", b{i}=1", ")\n"),
    "a syntax error on every line": lambda: _fill("input x: 1 x 8\n", lambda i: f"y{i} = x -> conv(8, 1) relu\n"),
    "10,000 tensors, then unknown names": lambda: _fill("input x: 1 x 8\n" + "".join(
        f"t{i} = x -> relu\n" for i in range(10_000)), lambda i: f"u{i} = q{i} -> relu\n", "output y = x\n"),
    "10,000 layers (the layer limit)": lambda: "input x: 4 x 64 x 64\na0 = x\n" + "".join(
        f"a{i + 1} = a{i} -> relu\n" for i in range(9_999)) + "output y = a9999 -> relu\n",
    "a billion no-op block calls": lambda: ("block id() {\n  return in\n}\ninput x: 1 x 8\n"
                                            "output y = x -> id x 1000000000\n"),
    "adaptive pooling to 10^8": lambda: "input x: 1 x 8\noutput y = x -> adaptive_avgpool(100000000)\n",
}


def measure(text: str) -> tuple[float, int, int, int]:
    """(seconds, peak RSS bytes, exit code, bytes of output) of `cnndsl check` on `text`."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "hostile.cnn"
        path.write_text(text)
        with (Path(directory) / "out").open("w+b") as output:
            start = time.perf_counter()
            child = subprocess.Popen([CNNDSL, "check", str(path)], stdout=output, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(child.pid, 0)  # the child's own peak, not the maximum of all children
            seconds = time.perf_counter() - start
            child.returncode = os.waitstatus_to_exitcode(status)
            return seconds, usage.ru_maxrss * 1024, child.returncode, output.tell()


def main() -> None:
    print(f"`cnndsl check` on worst cases of at most 1 MB ({os.cpu_count()} cores, Python {sys.version.split()[0]})\n")
    print("| input | size | exit | time (s) | peak RSS (MB) | output (kB) |")
    print("|---|---:|---:|---:|---:|---:|")
    worst_time = 0.0
    for name, make in CASES.items():
        text = make()
        seconds, peak, code, output = measure(text)
        worst_time = max(worst_time, seconds)
        print(f"| {name} | {len(text.encode()) / 1000:,.0f} kB | {code} | {seconds:.2f} | {peak / 1e6:,.0f} | "
              f"{output / 1000:,.1f} |", flush=True)
    print(f"\nslowest: {worst_time:.2f} s (target 5 s)")


if __name__ == "__main__":
    main()
