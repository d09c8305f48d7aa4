"""Fuzz `cnndsl check` (and the PyTorch lowering of what checks clean) with generated and mutated specs.

    python tools/fuzz.py --inputs 1000000 --workers 2 --out fuzz-results   # `make fuzz`
    python tools/fuzz.py --inputs 3000                                      # what the CI test runs

Inputs come from two sources, half each:
- generation from the language itself: random inputs, chains of every registered op with arguments drawn
  from their schemas plus hostile values (0, negatives, 2^63, huge floats, keywords, tuples), blocks with
  parameters and defaults, `if`/`else`, repeats, aliases, constants, merges and imports;
- mutation of the bundled specs (specs/, examples/): lines deleted, duplicated and swapped, tokens and
  numbers replaced by extreme ones, control characters and Unicode inserted, text truncated, two specs
  spliced.

Each input runs through the command line in-process (`cnndsl check`, sometimes `--json` or
`--format markdown`), with a deadline. Outcomes: `clean` (exit 0), `spec-error` (exit 1),
`usage-error` (exit 2 with a usage message); anything else is a finding: `crash` (a traceback, "a bug in
cnndsl", or another exit code), `timeout` (past the deadline). A clean network small enough is also
lowered to PyTorch and run once (`lowering-crash` when that raises). Findings are saved with their input;
the summary (inputs, outcomes by class, slowest input, peak memory) is printed and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted([*ROOT.glob("specs/*.cnn"), *ROOT.glob("specs/lib/*.cnn"), *ROOT.glob("examples/**/*.cnn")])

HOSTILE_NUMBERS = ["0", "1", "-1", "2", "3", "7", "16", "255", "65536", "1000000000", "9223372036854775807",
                   "9223372036854775808", "1" * 40, "0.5", "1e308", "1e400", "1.5", "-0.0", "3x224x224", "0x0"]
HOSTILE_TEXT = ["\x1b[2J", "\x1b]0;t\x07", "\r", "\x00", "\u202e", "\t", "\ufeff", "é", "->", "(", ")", "[", "]",
                "{", "}", ",", "=", ":", "#", "\\\n", "\n", " x ", " as ", " if ", "else", "block", "return",
                "import \"x.cnn\"", "in", "input", "output", "const", "not", "and", "or", "true", "//", "%"]
KEYWORD_VALUES = ["same", "valid", "nearest", "bilinear", "depthwise", "true", "false", "in", "x", "bogus"]


# ---- generation ----------------------------------------------------------------------------------

class Rng(random.Random):
    """A random source that also knows how hostile the spec being generated is: most specs are written
    sanely, so that they reach the shape rules, analysis passes and lowering; some are hostile throughout."""

    hostile = 0.04


def _number(rng: random.Random) -> str:
    if rng.random() >= getattr(rng, "hostile", 0.04):
        return str(rng.choice([1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 7, 8, 16, 32, 64]))
    return rng.choice([n for n in HOSTILE_NUMBERS if "x" not in n])


def _expression(rng: random.Random, names: list[str], depth: int = 0) -> str:
    roll = rng.random()
    if depth > 2 or roll < (0.75 if getattr(rng, "hostile", 0.04) else 0.95):
        return _number(rng) if rng.random() < 0.8 or not names else rng.choice(names)
    if roll < 0.83:
        return f"({_expression(rng, names, depth + 1)}, {_expression(rng, names, depth + 1)})"
    if roll < 0.88:
        return rng.choice(KEYWORD_VALUES)
    if roll < 0.92:
        cond = f"{_expression(rng, names, depth + 1)} {rng.choice(['>', '==', '!=', '<='])} {_number(rng)}"
        return f"({_expression(rng, names, depth + 1)} if {cond} else {_expression(rng, names, depth + 1)})"
    if roll < 0.95:  # a shape function, of a tensor that may or may not be in scope
        tensor = rng.choice(["x", "in", "t0", "t1", "nope", _number(rng)])
        return rng.choice([f"channels({tensor})", f"size({tensor}, {_number(rng)})", f"shape({tensor})",
                           f"size({tensor}, -1)", f"chanels({tensor})"])
    op = rng.choice(["+", "-", "*", "//", "/", "%"])
    return f"{_expression(rng, names, depth + 1)} {op} {_expression(rng, names, depth + 1)}"


def _call(rng: random.Random, ops: list[tuple[str, list[str], list[str]]], values: list[str],
          blocks: list[tuple[str, int]]) -> str:
    if blocks and rng.random() < 0.2:
        name, arity = rng.choice(blocks)
        args = [_expression(rng, values) for _ in range(arity + (rng.random() < 0.1))]
        return f"{name}({', '.join(args)})" if args else name
    name, positional, keywords = rng.choice(ops)
    if name[-2:] in ("1d", "2d", "3d") and rng.random() < 0.8:  # rank-generic names fit any input
        name = next((n for n, _, _ in ops if n == name[:-2]), name)
    sane = not getattr(rng, "hostile", 0.04)
    args = [_expression(rng, values) for _ in positional[: rng.randint(0, len(positional))]]
    if len(args) < len(positional) and rng.random() < (0.97 if sane else 0.7):
        args = [_expression(rng, values) for _ in positional]
    for key in rng.sample(keywords, k=min(len(keywords), rng.choice([0, 0, 0, 0, 1] if sane else [0, 1, 2]))):
        args.append(f"{key}={_expression(rng, values)}")
    if rng.random() < 0.02:
        args.append(f"bogus={_number(rng)}")
    text = f"{name}({', '.join(args)})" if args or rng.random() < 0.5 else name
    if rng.random() < 0.1:
        text += f" x {_number(rng)}"
    if rng.random() < 0.1:
        text += f" as n{rng.randint(0, 9)}"
    if rng.random() < 0.05:
        text += " if true"
    return text


def _chain(rng: random.Random, source: str, ops: list[tuple[str, list[str], list[str]]], values: list[str],
           blocks: list[tuple[str, int]]) -> str:
    return " -> ".join([source, *(_call(rng, ops, values, blocks) for _ in range(rng.randint(1, 4)))])


def generate(rng: random.Random, ops: list[tuple[str, list[str], list[str]]]) -> str:
    """A random spec in the language's own shape: mostly well-formed, with hostile values in it."""
    if isinstance(rng, Rng):
        rng.hostile = 0.0 if rng.random() < 0.6 else 0.1
    lines: list[str] = []
    values: list[str] = []
    blocks: list[tuple[str, int]] = []
    if rng.random() < 0.03:
        lines.append(f'import "{rng.choice(["lib.cnn", "../x.cnn", "/etc/passwd", "missing.cnn"])}"')
    for i in range(rng.randint(0, 3)):
        lines.append(f"const c{i} = {_expression(rng, values)}")
        values.append(f"c{i}")
    for b in range(rng.randint(0, 2)):
        params = [f"p{j}" + (f" = {_number(rng)}" if rng.random() < 0.3 else "") for j in range(rng.randint(0, 2))]
        names = [p.split(" ")[0] for p in params] + values
        body = [f"  return {_chain(rng, 'in', ops, names, blocks)}"]
        if rng.random() < 0.3:
            body = [f"  if {names[0] if names else 'true'} > 1 {{", "  " + body[0], "  } else {",
                    "    return in", "  }"]
        lines += [f"block b{b}({', '.join(params)}) {{", *body, "}"]
        blocks.append((f"b{b}", len(params)))
    rank = rng.choice([1, 2, 2, 2, 3])
    dims = [rng.choice([1, 3, 4, 8, 16])] + [rng.choice([1, 2, 5, 8, 16, 32]) for _ in range(rank)]
    if rng.random() < 0.1:
        dims[rng.randrange(len(dims))] = int(rng.choice(["0", "-1", "1000000"]).lstrip("-") or 0)
    lines.append(f"input x: {' x '.join(map(str, dims))}")
    tensors = ["x"]
    for t in range(rng.randint(1, 4)):
        merged = ", ".join(rng.sample(tensors, min(2, len(tensors))))
        source = rng.choice(tensors) if rng.random() < 0.85 else f"[{merged}]"
        lines.append(f"t{t} = {_chain(rng, source, ops, values, blocks)}")
        tensors.append(f"t{t}")
    if len(tensors) > 2 and rng.random() < 0.3:
        lines.append(f"m = [{tensors[-1]}, {tensors[-2]}] -> {rng.choice(['add', 'mul', 'concat'])}")
        tensors.append("m")
    lines.append(f"output y = {tensors[-1]}" + (f" -> {_call(rng, ops, values, blocks)}" if rng.random() < 0.5 else ""))
    return "\n".join(lines) + "\n"


def mutate(rng: random.Random, text: str, other: str) -> str:
    """A bundled spec with one to four random edits."""
    lines = text.splitlines()
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if not lines:
            lines = [""]
        i = rng.randrange(len(lines))
        if roll < 0.15:
            del lines[i]
        elif roll < 0.25:
            lines.insert(i, lines[i])
        elif roll < 0.35:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif roll < 0.6:
            digits = [k for k, ch in enumerate(lines[i]) if ch.isdigit()]
            if digits:
                k = rng.choice(digits)
                lines[i] = lines[i][:k] + rng.choice(HOSTILE_NUMBERS) + lines[i][k + 1:]
        elif roll < 0.8:
            k = rng.randint(0, len(lines[i]))
            lines[i] = lines[i][:k] + rng.choice(HOSTILE_TEXT) + lines[i][k:]
        elif roll < 0.9:
            k = rng.randint(0, len(lines[i]))
            lines[i] = lines[i][:k]
        else:
            donor = other.splitlines()
            if donor:
                lines[i:i] = donor[rng.randrange(len(donor)):][: rng.randint(1, 10)]
    return "\n".join(lines) + ("\n" if rng.random() < 0.9 else "")


# ---- running -------------------------------------------------------------------------------------

class _Deadline(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Deadline


def _op_table() -> list[tuple[str, list[str], list[str]]]:
    from cnndsl.ops import REGISTRY

    table = []
    for name, op in sorted(REGISTRY.items()):
        fields = op.Params.argument_names()
        table.append((name, list(op.positional), [f for f in fields if f not in op.positional]))
    return table


def _check_through_cli(path: Path, args: list[str]) -> tuple[str, str]:
    """(outcome, detail) of `cnndsl check path args`, run in-process."""
    from click.testing import CliRunner

    from cnndsl.cli import main

    result = CliRunner().invoke(main, ["check", str(path), *args, "--no-color"], catch_exceptions=True)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "crash", f"{type(result.exception).__name__}: {result.exception}"[:500]
    if "a bug in cnndsl" in output or "Traceback" in output:
        return "crash", output[-500:]
    return {0: "clean", 1: "spec-error", 2: "usage-error"}.get(result.exit_code, "crash"), ""


def _lower_small(path: Path) -> str | None:
    """Lower a clean network to PyTorch and run it once, when it is small; the error, or None."""
    import torch

    import cnndsl
    from cnndsl.backends.torch.export import example_inputs

    network = cnndsl.load(path)
    totals = network.report().totals
    if totals.params > 2_000_000 or totals.activation_bytes > 64_000_000 or totals.macs > 200_000_000:
        return None
    try:
        module = network.to_torch(seed=0)
        with torch.no_grad():
            module(*example_inputs(network.graph, batch=1))
    except cnndsl.SpecError:
        return None  # E600: an op this backend does not lower is reported, not a crash
    except Exception as exc:  # noqa: BLE001 - every other failure is a finding
        return f"{type(exc).__name__}: {exc}"[:500]
    return None


def run_one(index: int, seed: int, workdir: Path, deadline: float, lower: bool) -> dict[str, Any]:
    rng = Rng(seed * 1_000_003 + index)
    if index % 2 == 0:
        text, origin = generate(rng, _OPS), "generated"
    else:
        base, other = rng.choice(_SEED_TEXTS), rng.choice(_SEED_TEXTS)
        text, origin = mutate(rng, base[1], other[1]), f"mutated {base[0]}"
    case = workdir / f"case{os.getpid()}"
    if not case.exists():  # beside the bundled block libraries, so that mutated specs still import them
        case.mkdir()
        shutil.copytree(ROOT / "specs" / "lib", case / "lib")
    path = case / "model.cnn"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    (case / "lib.cnn").write_text("block twice() {\n  return in -> relu -> relu\n}\n")
    args = rng.choice([[], [], ["--json"], ["--format", "markdown"], ["--batch", "3"]])
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, deadline)
    try:
        outcome, detail = _check_through_cli(path, args)
        if lower and outcome == "clean":
            problem = _lower_small(path)
            if problem:
                outcome, detail = "lowering-crash", problem
    except _Deadline:
        outcome, detail = "timeout", f"past {deadline} s"
    except RecursionError as exc:
        outcome, detail = "crash", f"RecursionError: {exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"index": index, "origin": origin, "outcome": outcome, "detail": detail, "seconds": seconds,
            "peak_bytes": peak, "text": text if outcome not in ("clean", "spec-error", "usage-error") else None,
            "size": len(text)}


_OPS: list[tuple[str, list[str], list[str]]] = []
_SEED_TEXTS: list[tuple[str, str]] = []


def _init_worker() -> None:
    import gc

    global _OPS, _SEED_TEXTS
    _OPS = _op_table()
    _SEED_TEXTS = [(str(p.relative_to(ROOT)), p.read_text()) for p in SEEDS]
    signal.signal(signal.SIGALRM, _alarm)
    gc.collect()


def _worker(job: tuple[int, int, str, float, bool]) -> dict[str, Any]:
    index, seed, workdir, deadline, lower = job
    return run_one(index, seed, Path(workdir), deadline, lower)


def fuzz(inputs: int, seed: int = 0, workers: int = 1, deadline: float = 10.0, lower: bool = True,
         out: Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Run `inputs` cases; the summary (and, with `out`, each finding's input saved there)."""
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    by_origin: Counter[str] = Counter()
    findings: list[dict[str, Any]] = []
    slowest: dict[str, Any] = {"seconds": 0.0}
    peak = 0
    with tempfile.TemporaryDirectory(prefix="cnndsl-fuzz-") as workdir:
        jobs = ((i, seed, workdir, deadline, lower) for i in range(inputs))
        if workers > 1:
            # spawn, not fork: a parent that has run PyTorch holds OpenMP threads, and a forked child that
            # lowers a network to PyTorch deadlocks in them
            pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, maxtasksperchild=2000)
            results = pool.imap_unordered(_worker, jobs, chunksize=8)
        else:
            _init_worker()
            pool, results = None, map(_worker, jobs)
        try:
            for done, result in enumerate(results, start=1):
                counts[result["outcome"]] += 1
                by_origin[result["origin"].split(" ")[0]] += 1
                peak = max(peak, result["peak_bytes"])
                if result["seconds"] > slowest["seconds"]:
                    slowest = {k: result[k] for k in ("index", "origin", "outcome", "seconds", "size")}
                if result["text"] is not None:
                    findings.append(result)
                    if out is not None:
                        out.mkdir(parents=True, exist_ok=True)
                        (out / f"finding{result['index']}.cnn").write_text(result["text"], errors="surrogatepass")
                if progress and done % 1000 == 0:
                    rate = done / (time.perf_counter() - started)
                    print(f"{done:,} inputs, {rate:.0f}/s, {dict(counts)}", file=sys.stderr, flush=True)
                if out is not None and done % 10_000 == 0:  # a long run interrupted still has its figures
                    _write(out, _summary(inputs, done, seed, workers, deadline, started, counts, by_origin,
                                         slowest, peak, findings))
        finally:
            if pool is not None:
                pool.terminate()
    summary = _summary(inputs, sum(counts.values()), seed, workers, deadline, started, counts, by_origin, slowest,
                       peak, findings)
    if out is not None:
        _write(out, summary)
    return summary


def _summary(inputs: int, done: int, seed: int, workers: int, deadline: float, started: float,
             counts: Counter[str], by_origin: Counter[str], slowest: dict[str, Any], peak: int,
             findings: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "inputs": inputs, "done": done, "seed": seed, "workers": workers, "deadline_s": deadline,
        "seconds": round(time.perf_counter() - started, 1), "outcomes": dict(counts), "origins": dict(by_origin),
        "slowest": slowest, "peak_rss_bytes": peak,
        "findings": [{k: f[k] for k in ("index", "origin", "outcome", "detail")} for f in findings],
    }


def _write(out: Path, summary: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


FINDINGS = ("crash", "timeout", "lowering-crash")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--deadline", type=float, default=10.0, help="seconds one input may take")
    parser.add_argument("--no-lower", action="store_true", help="only check; do not lower clean networks")
    parser.add_argument("--out", type=Path, default=Path("fuzz-results"))
    args = parser.parse_args()
    summary = fuzz(args.inputs, args.seed, args.workers, args.deadline, not args.no_lower, args.out, progress=True)
    print(json.dumps({k: v for k, v in summary.items() if k != "findings"}, indent=1))
    found = sum(summary["outcomes"].get(kind, 0) for kind in FINDINGS)
    print(f"{found} finding(s); inputs in {args.out}/", file=sys.stderr)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
