"""Commands that build and run artifacts: compile, run, bench."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..layout import fmt_shape
from .common import (
    color_option,
    debug_option,
    fail_usage,
    input_option,
    layout_option,
    load_spec,
    names,
    reported_errors,
    spec_options,
    trials_option,
    trials_per_task_option,
    usage_message,
    winograd_option,
)

FORMATS = {"pt2": "torch.export program", "onnx": "ONNX model"}


@click.command("compile")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--to", "backend", type=click.Choice(["torch", "tvm"]), default="torch", show_default=True,
              help="torch: torch.export / ONNX file; tvm: a TVM library directory (model.so, params, manifest).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Artifact to write (default: SPEC's name with the format's suffix here; build/NAME for tvm).")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default=None,
              help="torch only. pt2: torch.export program; onnx: ONNX (opset 18). Default: from -o's suffix, else pt2.")
@click.option("--dynamic-batch", is_flag=True, help="Make the batch axis dynamic in the artifact.")
@click.option("--fold-bn", is_flag=True,
              help="onnx only: fold each batch norm into the convolution before it (kept as a node by default).")
@click.option("--outputs", default=None, metavar="NAME,...",
              help="Return these layers' or block instances' tensors instead of the outputs (feature extraction; "
                   "`check --taps` reports them), e.g. --outputs layer2,layer3,layer4.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="The batch the artifact is specialised to (without --dynamic-batch).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Load this state_dict (torch.save) instead of initialising the parameters.")
@click.option("--weights-map", "weights_map", multiple=True, metavar="RULE",
              help="Rename --weights' keys from another layout, in order: PATTERN=REPLACEMENT (a regular "
                   "expression, e.g. '^module\\.=' or '^backbone\\.='), -PATTERN (leave those tensors out), or "
                   "@FILE of rules, one per line (repeatable).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed of the default initialisation.")
@click.option("--target", default="llvm", show_default=True,
              help="tvm only: llvm (this CPU), cuda, h100 or h200 (TVM's complete sm_90 target), or a TVM target "
                   "as a JSON dict.")
@click.option("--tune", is_flag=True, help="tvm only: tune the kernels with MetaSchedule first.")
@click.option("--cuda-graph", "cuda_graph", is_flag=True,
              help="tvm only, CUDA targets: capture the kernel launches in a CUDA graph, replayed on every call.")
@trials_option
@trials_per_task_option
@click.option("--tune-db", type=click.Path(path_type=Path), default=None,
              help="tvm only: tuning database directory to apply (and, with --tune, to fill); default with --tune: "
                   "$CNNDSL_TUNE_DB or ~/.cache/cnndsl/tuning; without: cnndsl's pre-tuned kernels for h100/h200. "
                   "`none`: no records at all.")
@layout_option
@winograd_option
@input_option
@spec_options
@color_option
@debug_option
def compile_spec(spec: Path, backend: str, output: Path | None, fmt: str | None, dynamic_batch: bool,
                 fold_bn: bool, outputs: str | None, batch: int, weights: Path | None, weights_map: tuple[str, ...],
                 seed: int, target: str, tune: bool, cuda_graph: bool, trials: int, trials_per_task: int | None,
                 tune_db: Path | None, layout: str, winograd: str, inputs: tuple[str, ...], constants: tuple[str, ...],
                 import_path: tuple[Path, ...], max_layers: int | None, color: bool | None, debug: bool) -> None:
    """Compile SPEC to a deployable artifact (checking it first; errors stop before any lowering)."""
    if backend == "tvm" and (fmt or fold_bn):
        raise click.UsageError("--format and --fold-bn apply to --to torch (a TVM build folds batch norm itself)")
    if backend == "torch" and (tune or tune_db or target != "llvm" or layout != "auto" or winograd != "auto"
                               or cuda_graph):
        raise click.UsageError("--target, --tune, --tune-db, --layout, --winograd and --cuda-graph apply to --to tvm")
    taps = names(outputs, "--outputs")
    if weights_map and weights is None:
        raise click.UsageError("--weights-map renames the keys of --weights; give --weights too")
    no_records = tune_db is not None and str(tune_db) == "none"
    if no_records and tune:
        raise click.UsageError("--tune needs a database to fill; --tune-db none builds without any records")
    start = time.perf_counter()
    with reported_errors(color, debug, "compiling"):
        network = load_spec(spec, inputs, import_path, max_layers, constants)
        if taps:
            network = network.tapped(taps)
        rules = _weights_map_rules(weights_map)
        if backend == "tvm":
            tune_db = None if no_records else tune_db
            compiled = network.to_tvm(target, output or Path("build") / spec.stem, batch, trials if tune else 0,
                                      tune_db, layout=layout, pretuned=not no_records, winograd=winograd, seed=seed,
                                      weights=weights, weights_map=rules, dynamic_batch=dynamic_batch,
                                      cuda_graph=cuda_graph, log=lambda line: click.echo(line, err=True),
                                      trials_per_task=trials_per_task)
            tuned = (f", {compiled.tuning.summary()}" if tune and compiled.tuning else
                     f", records from {tune_db}" if tune_db else "")
            any_batch = ", any batch" if dynamic_batch else ""
            click.echo(f"wrote {compiled.path}/ (TVM {compiled.target}, {compiled.layout.upper()}{tuned}{any_batch}) "
                       f"in {time.perf_counter() - start:.1f} s")
            return
        fmt = _artifact_format(fmt, output)
        output = output or Path(f"{spec.stem}.{fmt}")
        if fold_bn and fmt != "onnx":
            raise click.UsageError("--fold-bn applies to ONNX (-o NAME.onnx or --format onnx)")
        network.export(output, kind=fmt, dynamic_batch=dynamic_batch, batch=batch, seed=seed, weights=weights,
                       weights_map=rules, fold_bn=fold_bn)
    batch_axis = "N" if dynamic_batch else str(batch)
    shapes = ", ".join(f"{name}: {fmt_shape((batch_axis, *shape))}" for name, shape in network.input_shapes.items())
    click.echo(f"wrote {output} ({FORMATS[fmt]}, {network.inference_params():,} parameters, {shapes}) "
               f"in {time.perf_counter() - start:.1f} s")


def _artifact_format(fmt: str | None, output: Path | None) -> str:
    suffix = output.suffix.lstrip(".") if output else ""
    if fmt is None:
        return suffix if suffix in FORMATS else "pt2"
    if suffix in FORMATS and suffix != fmt:
        raise click.BadParameter(f"--format {fmt} but the output {output} ends in .{suffix}", param_hint="--format")
    return fmt


def _weights_map_rules(options: tuple[str, ...]) -> list[str]:
    """--weights-map values: rules, or @FILE of rules (one per line; blank lines and # comments skipped)."""
    from ..diagnostics import UsageError
    from ..files import readable_file

    rules: list[str] = []
    for option in options:
        if not option.startswith("@"):
            rules.append(option)
            continue
        path = Path(option[1:])
        readable_file(path, "weights map")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"weights map {path} cannot be read ({exc})") from exc
        rules += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return rules


@click.command("run")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--input", "inputs", multiple=True, metavar="[NAME=]FILE.npy",
              help="An input array (.npy); NAME= when the network has several inputs (repeatable).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write the output to this .npy (several outputs: .npz).")
@debug_option
def run_artifact(artifact: Path, inputs: tuple[str, ...], output: Path | None, debug: bool) -> None:
    """Run a TVM ARTIFACT directory (from `compile --to tvm`) on .npy inputs, with the TVM runtime only."""
    from ..extras import MissingExtra, require

    try:
        require("running a compiled artifact", "numpy", "tvm")
    except MissingExtra as exc:
        fail_usage(str(exc))
    import numpy as np

    from ..diagnostics import UsageError
    from ..files import atomic_file
    from ..runtime import ArtifactError, load

    try:
        model = load(artifact)
        arrays = _read_inputs(inputs, list(model.inputs))
        result = model(**arrays)
        results = result if isinstance(result, tuple) else (result,)
        named = dict(zip(model.outputs, results, strict=True))
        if output is not None:
            with atomic_file(output, "output") as temporary, temporary.open("wb") as file:
                if len(named) == 1:  # to the file object: np.save would append `.npy` to any other name
                    np.save(file, results[0])
                else:
                    np.savez(file, **named)  # type: ignore[arg-type]
            click.echo(f"wrote {output}")
    except UsageError as exc:
        fail_usage(usage_message(exc))
    except (ArtifactError, ModuleNotFoundError) as exc:  # the runtime says what to install
        fail_usage(str(exc))
    except Exception as exc:
        if debug:
            raise
        fail_usage(f"running {artifact} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    for name, value in named.items():
        top = ""
        if value.ndim == 2 and value.shape[1] > 1:
            top = f"; argmax per sample {value.argmax(axis=1).tolist()[:16]}"
        click.echo(f"{name}: {fmt_shape(value.shape)}, mean {value.mean():.6g}, "
                   f"min {value.min():.6g}, max {value.max():.6g}{top}")


def _read_inputs(items: tuple[str, ...], input_names: list[str]) -> dict[str, Any]:
    import numpy as np

    from ..files import readable_file
    from ..runtime import ArtifactError

    if len(items) != len(input_names):
        raise ArtifactError(f"the network takes {len(input_names)} input(s) ({', '.join(input_names)}); "
                            f"got {len(items)} --input")
    arrays = {}
    for position, item in enumerate(items):
        name, sep, file = item.partition("=")
        if not sep:
            name, file = input_names[position], item
        if name not in input_names:
            raise ArtifactError(f"--input names `{name}`; the network's inputs are {', '.join(input_names)}")
        try:
            arrays[name] = np.load(readable_file(Path(file), "input"), allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ArtifactError(f"cannot read {file} as a .npy array: {exc}") from exc
        if not isinstance(arrays[name], np.ndarray):
            raise ArtifactError(f"{file} holds several arrays (.npz); --input takes one .npy array")
    return arrays


@click.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--target", type=click.Choice(["llvm", "cuda"]), default="llvm", show_default=True)
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=(1, 16), show_default=True,
              help="Batch sizes to measure (repeatable).")
@click.option("--trials", type=click.IntRange(min=0), default=0, show_default=True,
              help="Tune tasks missing from the tuning database with this many trials first (0: use what it has).")
@click.option("--tune-db", type=click.Path(path_type=Path), default=None, help="Tuning database directory.")
@click.option("--rounds", type=click.IntRange(min=1), default=7, show_default=True,
              help="Interleaved rounds; the table shows their median and spread.")
@click.option("--no-compile", "skip_compile", is_flag=True, help="Skip torch.compile (it needs a C++ compiler).")
@layout_option
@winograd_option
@spec_options
@debug_option
def bench(spec: Path, target: str, batches: tuple[int, ...], trials: int, tune_db: Path | None, rounds: int,
          skip_compile: bool, layout: str, winograd: str, import_path: tuple[Path, ...], max_layers: int | None,
          debug: bool) -> None:
    """Latency of SPEC: PyTorch eager, torch.compile, TVM untuned and TVM tuned, measured interleaved."""
    from ..bench import render_table, run_benchmark

    with reported_errors(None, debug, "benchmarking"):
        network = load_spec(spec, (), import_path, max_layers)
        rows = run_benchmark(network, target, batches, trials, tune_db, rounds, not skip_compile, layout,
                             log=lambda line: click.echo(line, err=True), winograd=winograd)
    click.echo(render_table(network.name, target, rows))
