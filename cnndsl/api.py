"""The Python API the CLI is a thin shell over: ``cnndsl.load(path).report()``."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .analysis import analyse
from .analysis.macs import CONVENTIONS
from .analysis.memory import OPTIMIZER_STATES, peak_live_elements, training_memory
from .analysis.sizes import (
    AXIS_LETTERS,
    MAX_LAYER_SIZES,
    MAX_REEXPANSIONS,
    MAX_SIZES,
    Sizes,
    Verdict,
    only_shape_rule_errors,
    period,
    resized,
    sweep,
)
from .diagnostics import CheckingStopped, Diagnostic, DiagnosticSink, Option, SpecError, UsageError
from .extras import require
from .graph.elaborate import build_graph
from .graph.expr import Value
from .graph.model import Graph
from .layout import fmt_shape
from .limits import DEFAULT_LIMITS, Limits
from .report.assemble import BYTES_PER_ELEMENT, build_report, collapse_to_depth, tap_entries
from .report.model import Report
from .report.model import TrainingMemory as TrainingMemoryReport

if TYPE_CHECKING:
    import numpy as np
    from torch import fx, nn

    from .backends.tvm import Compiled, RoundReport, TuningReport
    from .backends.tvm.records import TaskSummary
    from .importers.network import ImportedNetwork


# How a checkpoint's keys become the module's: rules (`PATTERN=REPLACEMENT`, `-PATTERN`) or a function.
WeightsMap = Sequence[str] | Callable[[str], str | None]


class Network:
    """A checked network: its expanded graph (with each node's analysed facts) and the
    warnings and notes found while checking it."""

    def __init__(self, graph: Graph, diagnostics: list[Diagnostic]):
        self.graph = graph
        self.diagnostics = diagnostics

    @property
    def name(self) -> str:
        return self.graph.name

    def report(self, convention: str = "torchvision", batch: int = 1, taps: Sequence[str] = (),
               depth: int | None = None, train: str | None = None) -> Report:
        """The per-layer report and totals (and MACs and parameters by op kind); with `taps` (layers, block
        instances, inputs or outputs by name) also each one's shape, channels and receptive field, what a
        detection neck is configured with; with `depth`, block instances `depth` levels deep as one row each
        (torchinfo's `depth=`: `depth=1` gives ResNet's stages), the totals unchanged; with `train` (`sgd`,
        `adam`), the memory one training step holds."""
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown MAC convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
        if batch < 1:
            raise ValueError(f"batch must be positive; got {batch}")
        if depth is not None and depth < 1:
            raise ValueError(f"depth counts block levels from 1; got {depth}")
        with _collector_paused():
            report = build_report(self.graph, self.diagnostics, convention, batch)
            update: dict[str, object] = {}
            if taps:
                update["taps"] = tap_entries(self.graph, taps)
            if depth is not None:
                update["layers"] = collapse_to_depth(self.graph, report.layers, depth)
            if train is not None:
                update["training"] = self.training_memory(train, batch)
            return report.model_copy(update=update) if update else report

    def training_memory(self, optimizer: str = "sgd", batch: int = 1) -> TrainingMemoryReport:
        """What one training step with `optimizer` (`sgd` with momentum, or `adam`) holds at its peak:
        weights, gradients, optimizer state and the activations autograd keeps for the backward pass."""
        if optimizer not in OPTIMIZER_STATES:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZER_STATES)}")
        estimate = training_memory(self.graph, optimizer, batch)
        return TrainingMemoryReport(optimizer=optimizer, weights_bytes=estimate.weights,
                                    gradient_bytes=estimate.gradients, optimizer_bytes=estimate.optimizer_state,
                                    kept_activation_bytes=estimate.kept_activations, total_bytes=estimate.total)

    def peak_activation_bytes(self, batch: int = 1) -> int:
        return peak_live_elements(self.graph) * BYTES_PER_ELEMENT * batch

    def to_torch(self, seed: int | None = 0, weights: str | Path | None = None,
                 outputs: Sequence[str] | None = None, weights_map: WeightsMap | None = None) -> fx.GraphModule:
        """A torch.nn.Module (an fx.GraphModule, in eval mode) whose submodules carry the spec's names.

        Parameters get PyTorch's default initialisation drawn from `seed` (None: the global random
        state), or are loaded from a state_dict file `weights`, its keys renamed by `weights_map` (rules
        `PATTERN=REPLACEMENT` and `-PATTERN`, see backends/torch/weights.py, or a function of the key
        returning the new key or None) when it was saved from another layout. With `outputs` (names of layers, block
        instances or outputs: `["layer2", "layer3"]`) the forward returns a dict of those tensors and runs
        only what they need, as torchvision's create_feature_extractor; the state_dict is the whole
        network's. Raises SpecError (E600, E601) when a layer cannot be lowered or the weights do not
        fit, UsageError when an output names nothing.
        """
        require("compiling to PyTorch", "torch")
        from .backends.torch import build_module, load_weights
        from .backends.torch.weights import weights_map as rename_rules

        graph = self.graph if outputs is None else self.graph.with_outputs(list(outputs))
        module = build_module(graph, seed, named_outputs=outputs is not None)
        if weights is not None:
            key_map = weights_map if callable(weights_map) or weights_map is None else rename_rules(weights_map)
            load_weights(module, self.graph, Path(weights), key_map)
        return module

    def weights(self, seed: int | None = 0, weights: str | Path | None = None,
                weights_map: WeightsMap | None = None) -> dict[str, np.ndarray]:
        """The parameters and buffers as numpy arrays, named as `to_torch()`'s state_dict: PyTorch's
        default initialisation drawn from `seed`, or the state_dict file `weights`. What the TVM backend
        compiles with (the same numbers as the PyTorch module, by construction)."""
        module = self.to_torch(seed=seed, weights=weights, weights_map=weights_map)
        return {key: tensor.detach().cpu().numpy() for key, tensor in module.state_dict().items()}

    def tapped(self, outputs: Sequence[str]) -> Network:
        """This network computing the tensors `outputs` names (layers, block instances, outputs) instead of
        its outputs, in that order and under those names: what `export` and `to_tvm` then compile."""
        return Network(self.graph.with_outputs(list(outputs)), self.diagnostics)

    def export(self, path: str | Path, dynamic_batch: bool = False, batch: int = 1, seed: int | None = 0,
               weights: str | Path | None = None, kind: str | None = None,
               weights_map: WeightsMap | None = None, fold_bn: bool = False) -> Path:
        """Write a deployable PyTorch artifact, its kind (`onnx` or `pt2`) chosen by `kind` or the suffix:
        ONNX (checked with onnx.checker) or a torch.export program. The batch axis is `batch`, or symbolic
        with `dynamic_batch`; parameters as `to_torch`'s. An ONNX file keeps each batch norm as a node (its
        statistics stay visible and trainable) unless `fold_bn` folds it into the convolution before it.
        The file appears whole or not at all."""
        path = Path(path)
        kind = kind or path.suffix.lstrip(".")
        if kind not in ARTIFACT_KINDS:
            raise ValueError(f"cannot tell the artifact kind of {path}: name it .onnx or .pt2, or give kind=")
        if batch < 1:
            raise ValueError(f"batch must be positive; got {batch}")
        if fold_bn and kind != "onnx":
            raise ValueError("fold_bn applies to ONNX; a .pt2 program keeps the module's operations as they are")
        require(f"exporting to .{kind}", *ARTIFACT_KINDS[kind])
        module = self.to_torch(seed=seed, weights=weights, weights_map=weights_map)
        from .backends.torch.export import save_onnx, save_program
        from .files import atomic_file

        with atomic_file(path, "output") as temporary:
            if kind == "onnx":
                save_onnx(module, self.graph, temporary, batch=batch, dynamic_batch=dynamic_batch, fold_bn=fold_bn)
            else:
                save_program(module, self.graph, temporary, batch=batch, dynamic_batch=dynamic_batch)
        return path

    def to_tvm(self, target: str = "llvm", path: str | Path | None = None, batch: int = 1, tune: int = 0,
               tune_db: str | Path | None = None, layout: str = "auto", winograd: str = "auto", seed: int = 0,
               weights: str | Path | None = None, log: Callable[[str], None] | None = None,
               trials_per_task: int | None = None, weights_map: WeightsMap | None = None,
               dynamic_batch: bool = False, cuda_graph: bool = False, pretuned: bool = True) -> Compiled:
        """Compile with Apache TVM for `target` (`llvm`, `cuda`, `h100`/`h200`, or a TVM target as a JSON dict) into the
        artifact directory `path` (default build/<name>), tuning `tune` trials first or applying the
        records of the database `tune_db` (`trials_per_task` caps each kernel's share of the trials). With
        `dynamic_batch` it takes any batch (untuned: tuned kernels are specialised to one). With `cuda_graph`
        (CUDA targets) the kernel launches are captured once in a CUDA graph and replayed. For `h100` and
        `h200`, cnndsl's pre-tuned kernels are applied unless a database is named or `pretuned` is False.
        `.load()` on the result runs it (cnndsl.runtime)."""
        if batch < 1:
            raise ValueError(f"batch must be positive; got {batch}")
        require("compiling with TVM", "tvm", "torch")
        from .backends.tvm import compile_network

        return compile_network(self.graph, self.weights(seed, weights, weights_map), target,
                               Path(path) if path is not None else Path("build") / self.name, batch, tune,
                               Path(tune_db) if tune_db is not None else None, log=log, layout=layout,
                               trials_per_task=trials_per_task, winograd=winograd, seed=seed,
                               dynamic_batch=dynamic_batch, cuda_graph=cuda_graph, pretuned=pretuned)

    def tune(self, target: str = "llvm", trials: int = 2000, tune_db: str | Path | None = None, batch: int = 1,
             layout: str = "auto", winograd: str = "auto", trials_per_task: int | None = None,
             rpc_tracker: str | None = None, rpc_key: str | None = None, rpc_timeout: int = 120,
             builders: int | None = None, log: Callable[[str], None] | None = None) -> TuningReport:
        """Tune the kernels `to_tvm` would build for `target` (same batch, layout and Winograd choice) with
        MetaSchedule into the database `tune_db` (default: `tuning_database()`), without compiling: up to
        `trials` measurements over the tasks not yet in it. Candidates are built here (`builders` processes)
        and measured here, or on the RPC servers registered with the tracker `rpc_tracker` (HOST:PORT)
        under `rpc_key` (checked to exist before anything is lowered). Every round is written as it is
        measured: an interrupted run keeps its records and the next one resumes from them."""
        require("tuning with TVM", "tvm", "torch")
        from .backends.tvm import Tracker, tune_network

        tracker = None
        if rpc_tracker is not None:
            tracker = Tracker.parse(rpc_tracker, rpc_key, rpc_timeout)
            tracker.check_servers()  # before lowering and task extraction: a wrong address fails in seconds
        elif rpc_key is not None:
            raise UsageError("a device key names the servers of an RPC tracker; give the tracker's address too",
                             option=Option.RPC_TRACKER)
        return tune_network(self.graph, self.weights(), target, trials, tuning_database(tune_db), batch, layout,
                            trials_per_task, log=log, winograd=winograd, tracker=tracker, builders=builders)

    def tune_round(self, directory: str | Path, target: str = "llvm", candidates: int = 500,
                   ingest: str | Path | None = None, tune_db: str | Path | None = None, batch: int = 1,
                   layout: str = "auto", winograd: str = "auto", seed: int = 0, bundle_limit_mib: float = 48.0,
                   log: Callable[[str], None] | None = None) -> RoundReport:
        """Tuning in rounds through files, for a target this machine cannot reach (docs/round-tuning.md):
        commit the last round's measurements (`ingest`: `cnndsl measure`'s results) to the database, then
        write the next round's `candidates`, built for `target`, as a bundle in `directory` (refused when it
        packs to more than `bundle_limit_mib` MiB)."""
        require("tuning with TVM", "tvm", "torch")
        from .backends.tvm import tune_round

        return tune_round(self.graph, self.weights(), target, Path(directory), candidates,
                          Path(ingest) if ingest is not None else None,
                          Path(tune_db) if tune_db is not None else None, batch, layout, winograd, seed,
                          bundle_limit_mib, log=log)

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each input's per-sample shape, by name."""
        return {name: self.graph.shape(node) for name, node in self.graph.inputs.items()}

    @property
    def is_library(self) -> bool:
        """A spec of blocks and constants only (I103): no input, nothing to tabulate or compile."""
        return not self.graph.inputs

    def inference_params(self) -> int:
        """The parameters an inference artifact holds: those of the layers the outputs need (auxiliary
        training heads left out)."""
        return sum(self.graph.facts(node).params.params for node in self.graph.inference_nodes()
                   if self.graph.checked(node) is not None)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}: {fmt_shape(self.graph.shape(node))}" for name, node in self.graph.inputs.items())
        layers = len(self.graph) - len(self.graph.inputs)
        return f"<cnndsl network {self.name} ({shapes}), {layers} layer{'s' * (layers != 1)}>"


def failure_report(name: str, error: SpecError | UsageError, convention: str = "torchvision", batch: int = 1) -> Report:
    """The report of a spec that did not check (`check --json` prints it): the layers that did check, every
    diagnostic, null totals. A file that could not be read has no layers and its one diagnostic."""
    if isinstance(error, SpecError):
        return build_report(error.partial or Graph(name), error.diagnostics, convention, batch)
    return build_report(Graph(name), [error.diagnostic] if error.diagnostic is not None else [], convention, batch)


def tuning_database(tune_db: str | Path | None = None) -> Path:
    """The tuning database directory: `tune_db`, else $CNNDSL_TUNE_DB, else ~/.cache/cnndsl/tuning."""
    if tune_db is not None:
        return Path(tune_db)
    from .backends.tvm.tune import default_database_dir

    return default_database_dir()


def tuning_summary(database: str | Path) -> list[TaskSummary]:
    """Each tuned task of a tuning database: its target, how many measured records, the best run time."""
    require("reading a tuning database", "tvm")
    from .backends.tvm.records import summarize

    return summarize(Path(database))


def merge_tuning(sources: Sequence[str | Path], output: str | Path) -> tuple[int, int]:
    """Every measured record of the databases `sources` committed once into `output` (created, or added
    to); returns (records merged, workloads in the output)."""
    require("merging tuning databases", "tvm")
    from .backends.tvm.records import merge

    return merge([Path(source) for source in sources], Path(output))


# What each deployable PyTorch artifact needs installed, by file suffix.
ARTIFACT_KINDS = {"pt2": ("torch",), "onnx": ("torch", "onnx", "onnxscript")}


@dataclasses.dataclass(frozen=True)
class Imported:
    """A network imported from another format: the spec's text, the checked network, what was not carried
    over, and how the spec compares with its source."""

    text: str
    network: Network
    notes: tuple[str, ...]
    source_params: int | None  # the source's own count, where it has one
    max_difference: float | None  # outputs against the source's, relative (None: not compared)


def import_torch(model: str | nn.Module, inputs: dict[str, tuple[int, ...]], name: str | None = None,
                 arguments: str | None = None, flat: bool = False, verify: bool = True) -> Imported:
    """A PyTorch model as a spec: `model` is an nn.Module or `package.module:callable` (called with the JSON
    object `arguments`), traced with torch.fx at per-sample input shapes `inputs` ({"image": (3, 224,
    224)}). Layer names are the module's qualified names. With `verify` (the default) the spec is compiled
    back to PyTorch, the model's state_dict loaded into it strictly and the outputs compared (E704 when
    anything differs). Raises SpecError (E703: a part a spec cannot express, E705: the model cannot be
    built) with located diagnostics."""
    require("importing from PyTorch", "torch")
    from .importers.network import renamed_key
    from .importers.pytorch import Importer, build_model

    source = model if isinstance(model, str) else f"{type(model).__module__}.{type(model).__qualname__}"
    module = build_model(model, arguments) if isinstance(model, str) else model
    network_name = name or _identifier(source.rsplit(":", 1)[-1].rsplit(".", 1)[-1])
    importer = Importer(module, inputs, source, network_name)
    imported = importer.run()
    text = _imported_text(imported, flat)
    network = _checked_import(imported, text)
    difference = None
    if verify:
        from .importers.verify import verify_torch

        unused = set(importer.unused_keys())
        state = {renamed_key(importer.renamed.get(k, k)): v for k, v in module.state_dict().items()
                 if k not in unused}
        difference = verify_torch(imported, network.to_torch(seed=0), module, state, inputs)
    renamed = sorted({k.rsplit(".", 1)[0] for k in module.state_dict() if renamed_key(k) != k})
    if renamed:
        imported.notes.append(f"{len(renamed)} module names are no .cnn names and are written with `_` "
                              f"({renamed[0]} -> {renamed_key(renamed[0] + '.x')[:-2]}): the source's weights load "
                              "after the same renaming (--weights-map '[^\\w.]=_')")
    if importer.renamed:
        first = next(iter(importer.renamed.items()))
        imported.notes.append(f"{len(importer.renamed)} bare parameters are scale layers here ({first[0]} -> "
                              f"{first[1]}): the source's weights load after that renaming (--weights-map "
                              "'layer_scale$=layer_scale.weight' for ConvNeXt's)")
    return Imported(text, network, tuple(imported.notes), imported.source_params, difference)


def import_onnx(path: str | Path, name: str | None = None, inputs: dict[str, tuple[int, ...]] | None = None,
                flat: bool = False, verify: bool = True) -> Imported:
    """An ONNX model as a spec (opset 9 and later; per-sample input shapes from the model, or `inputs` where
    they are symbolic). With `verify` the spec is compiled to PyTorch, the model's initializers loaded into
    it and its outputs compared with onnxruntime's (E704 when they differ). Raises SpecError (E703: an
    operator a spec cannot express, E705: not a valid model) with located diagnostics."""
    require("importing ONNX", "onnx")
    from .importers.onnx import import_onnx as translate

    imported = translate(Path(path), name or _identifier(Path(path).stem), inputs)
    text = _imported_text(imported, flat)
    network = _checked_import(imported, text)
    difference = None
    if verify:
        require("comparing the import with onnxruntime", "torch")
        from .importers.verify import verify_onnx

        difference = verify_onnx(imported, network.to_torch(seed=0), str(path))
    return Imported(text, network, tuple(imported.notes), imported.source_params, difference)


def import_caffe(path: str | Path, name: str | None = None, flat: bool = False) -> Imported:
    """A Caffe prototxt (deploy or train_val: training-only layers left out with a note) as a spec, read with
    a grammar of protobuf's text format (no Caffe or protobuf schema needed). A prototxt has no weights:
    the spec is checked, not compared. Raises SpecError (E700-E703, located in the prototxt)."""
    from .importers.caffe import import_caffe as translate

    imported = translate(Path(path), name or _identifier(Path(path).stem))
    text = _imported_text(imported, flat)
    network = _checked_import(imported, text)
    return Imported(text, network, tuple(imported.notes), None, None)


def import_keras(path: str | Path, name: str | None = None, flat: bool = False, verify: bool = True) -> Imported:
    """A Keras 3 model (`.keras`, or the config.json of `model.to_json()`) as a spec. The configuration is
    read as data, never by running the file; with `verify` and a `.keras` holding weights, the spec is
    compiled to PyTorch with those weights and compared with Keras's own outputs (its torch backend, the
    file loaded in safe mode). Raises SpecError (E702, E703, E705) with located diagnostics."""
    from .importers.keras import import_keras as translate

    imported = translate(Path(path), name or _identifier(Path(path).stem))
    text = _imported_text(imported, flat)
    network = _checked_import(imported, text)
    difference = None
    if verify and any(call.weights for call in imported.calls):
        require("comparing the import with Keras", "torch")
        from .importers.verify import verify_keras

        difference = verify_keras(imported, network.to_torch(seed=0), str(path))
    return Imported(text, network, tuple(imported.notes), imported.source_params, difference)


def _identifier(text: str) -> str:
    import re

    name = re.sub(r"\W", "_", text).strip("_") or "imported"
    return f"net_{name}" if name[0].isdigit() else name


def _imported_text(imported: ImportedNetwork, flat: bool) -> str:
    """The writer's text in `cnndsl fmt`'s layout (the formatter then leaves an imported spec as it is)."""
    from .importers.writer import write_spec
    from .syntax.fmt import FormatError, format_text

    text = write_spec(imported, flat)
    try:
        return format_text(text, f"{imported.name}.cnn")
    except (SpecError, FormatError):
        return text  # the check that follows reports what is wrong


def _checked_import(imported: ImportedNetwork, text: str) -> Network:
    """The written spec, checked; its parameter count against the source's. A spec that does not check is a
    cnndsl bug (the importer wrote it): E704, with the checker's messages as notes."""
    from .importers.verify import mismatch, verify_params

    try:
        network = loads(text, f"{imported.name}.cnn")
    except SpecError as exc:
        error = mismatch(imported, "the spec written from it does not check")
        raise SpecError([dataclasses.replace(error.diagnostics[0], notes=tuple(
            d.headline() for d in exc.diagnostics[:5]))]) from None
    verify_params(imported, network.report().totals.params)
    return network


def load(path: str | Path, inputs: dict[str, tuple[int, ...]] | None = None, limits: Limits = DEFAULT_LIMITS,
         import_path: Sequence[str | Path] = (), constants: Mapping[str, Value] | None = None) -> Network:
    """Parse, expand and analyse a spec. Raises SpecError (with every diagnostic) when it has errors,
    UsageError when the file cannot be read or an input override names no input.

    Imports resolve inside the spec's directory tree and the `import_path` directories only; `limits`
    bounds the work a spec may ask for (see cnndsl.limits). `constants` replace the values of the spec's own
    top-level constants ({"aux_loss": False}; numbers and true/false, each of its declared kind)."""
    return _checked(Path(path), None, inputs, limits, import_path, constants)


def loads(text: str, name: str = "model.cnn", inputs: dict[str, tuple[int, ...]] | None = None,
          limits: Limits = DEFAULT_LIMITS, import_path: Sequence[str | Path] = (), base: str | Path = ".",
          constants: Mapping[str, Value] | None = None) -> Network:
    """`load` for a spec given as a string: diagnostics show it as `name`, the network is named after it,
    and its imports resolve inside the directory `base` (default: the current one)."""
    return _checked(Path(base) / name, text, inputs, limits, import_path, constants)


def sizes(path: str | Path, low: int = 32, high: int = 2048, axes: str | None = None, input: str | None = None,
          inputs: dict[str, tuple[int, ...]] | None = None, limits: Limits = DEFAULT_LIMITS,
          import_path: Sequence[str | Path] = (), text: str | None = None, at: Sequence[int] = (),
          constants: Mapping[str, Value] | None = None) -> Sizes:
    """The input sizes from `low` to `high` (inclusive) that the spec at `path` (or `text`, shown as `path`)
    accepts exactly (cnndsl.analysis.sizes): along `axes` ("H", "W", "HW", "L", ...; default every
    spatial axis together) of the input `input` (default the first), the other axes and inputs as
    declared or as `inputs` overrides them; `at`: sizes judged one by one as well (`Sizes.at`).
    Raises SpecError when the spec has errors other than shape rules broken at its declared size
    (those are what the sweep looks past), UsageError for a bad range, axis or input name."""
    spec = _SizedSpec(Path(path), text, dict(inputs or {}), limits, import_path, input, constants)
    if axes is None and len(set(spec.declared[1:])) > 1:
        raise UsageError(f"input `{spec.name}` is {fmt_shape(spec.declared[1:])}, not square: name the axes to "
                         f"size, e.g. {'H' if len(spec.declared) == 3 else 'D'} (the others keep their size), or "
                         "all of them together; `cnndsl sizes` sweeps each axis in turn")
    return spec.sweep(axes, low, high, at)


def size_sweeps(path: str | Path, low: int = 32, high: int = 2048, axes: str | None = None, input: str | None = None,
                inputs: dict[str, tuple[int, ...]] | None = None, limits: Limits = DEFAULT_LIMITS,
                import_path: Sequence[str | Path] = (), text: str | None = None, at: Sequence[int] = (),
                constants: Mapping[str, Value] | None = None) -> list[Sizes]:
    """`sizes` as `cnndsl sizes` runs it: without `axes`, every spatial axis together for a square input,
    else each axis in turn (the others as declared); the spec is read and checked once."""
    spec = _SizedSpec(Path(path), text, dict(inputs or {}), limits, import_path, input, constants)
    if axes is not None or len(set(spec.declared[1:])) <= 1:
        return [spec.sweep(axes, low, high, at)]
    return [spec.sweep(letter, low, high, at) for letter in AXIS_LETTERS.get(len(spec.declared) - 1, "")]


class _SizedSpec:
    """A spec checked at its declared sizes (where those break shape rules only, the graph built despite
    them), and the input to size: what each sweep of `sizes` starts from."""

    def __init__(self, path: Path, text: str | None, overrides: dict[str, tuple[int, ...]], limits: Limits,
                 import_path: Sequence[str | Path], input: str | None, constants: Mapping[str, Value] | None = None):
        self.path, self.text, self.overrides, self.limits, self.import_path = path, text, overrides, limits, import_path
        self.constants = constants
        try:
            self.graph = _checked(path, text, overrides, limits, import_path, constants).graph
        except SpecError as exc:
            if exc.partial is None or not only_shape_rule_errors(exc.diagnostics):
                raise  # not a size that does not fit: the spec itself is wrong
            self.graph = exc.partial
        self.name = input if input is not None else next(iter(self.graph.inputs), "")
        if self.name not in self.graph.inputs:
            raise UsageError(f"no input named {self.name!r} in {path.name} (its inputs: "
                             f"{', '.join(self.graph.inputs) or 'none'})")
        declared = self.graph.node(self.graph.inputs[self.name]).shape
        assert declared is not None
        self.declared: tuple[int, ...] = declared

    def expanded(self, shapes: dict[str, tuple[int, ...]]) -> Graph | Verdict:
        """The spec expanded and checked at these input shapes, or the verdict of its first error."""
        try:
            return _checked(self.path, self.text, {**self.overrides, **shapes}, self.limits, self.import_path,
                            self.constants).graph
        except SpecError as exc:
            first = next(d for d in exc.diagnostics if d.is_error)
            return Verdict(0, False, first.code, "", first.message)

    def sweep(self, axes: str | None, low: int, high: int, at: Sequence[int]) -> Sizes:
        chosen = _axes(axes, len(self.declared) - 1, self.name)
        _check_sweep(self.path, self.graph, low, high, at)
        reexpansions = 0

        def reexpanded(shapes: dict[str, tuple[int, ...]]) -> Graph | Verdict:
            nonlocal reexpansions
            reexpansions += 1
            if reexpansions > MAX_REEXPANSIONS:
                raise UsageError(f"{self.path.name}'s layers read tensor shapes that change with the input size, so "
                                 f"each size is expanded again; at most {MAX_REEXPANSIONS} sizes of such a spec per "
                                 "run: give a narrower range of sizes", option=Option.SIZE_RANGE)
            built = self.expanded(shapes)
            # a verdict from an expansion carries the size it was made for
            return built if isinstance(built, Graph) else dataclasses.replace(built,
                                                                               size=shapes[self.name][1 + chosen[0]])

        result = sweep(self.graph, self.name, chosen, low, high, reexpanded, at)
        if any(self.graph.checked(node.name) is None for node in self.graph.nodes()):
            # the declared size broke a rule: the strides after it are unknown there; read them where it fits
            fitting = next(iter(result.fitting), None)
            built = None if fitting is None else self.expanded({self.name: resized(self.declared, chosen, fitting)})
            if isinstance(built, Graph):
                result.refit(period(built, chosen))
        return result


def _check_sweep(path: Path, graph: Graph, low: int, high: int, at: Sequence[int]) -> None:
    """UsageError for a sweep that is malformed or larger than one run does (`cnndsl.analysis.sizes`)."""
    count = high - low + 1
    if not 1 <= low <= high:
        raise UsageError(f"the range of sizes must be 1 <= low <= high; got {low}:{high}", option=Option.SIZE_RANGE)
    if count > MAX_SIZES:
        raise UsageError(f"the range {low}:{high} holds {count:,} sizes; at most {MAX_SIZES:,} per run",
                         option=Option.SIZE_RANGE)
    if count * len(graph) > MAX_LAYER_SIZES:
        raise UsageError(f"{count:,} sizes of {path.name}'s {len(graph):,} layers is more than one run judges "
                         f"({MAX_LAYER_SIZES:,} layer-sizes, about a minute): give a narrower range of sizes",
                         option=Option.SIZE_RANGE)
    if any(size < 1 for size in at):
        raise UsageError(f"sizes are positive; got {', '.join(str(size) for size in at if size < 1)}")


def _axes(text: str | None, rank: int, name: str) -> tuple[int, ...]:
    letters = AXIS_LETTERS.get(rank)
    if letters is None:
        raise UsageError(f"input `{name}` has no spatial axes to size")
    if text is None:
        return tuple(range(rank))
    wanted = text.upper().replace(",", "").replace(" ", "")
    if not wanted or any(letter not in letters for letter in wanted) or len(set(wanted)) != len(wanted):
        raise UsageError(f"{text!r} does not name axes of input `{name}`; its spatial axes are "
                         f"{', '.join(letters)} (or several together, e.g. {letters})", option=Option.AXES)
    return tuple(sorted(letters.index(letter) for letter in wanted))


def _checked(path: Path, text: str | None, inputs: dict[str, tuple[int, ...]] | None, limits: Limits,
             import_path: Sequence[str | Path], constants: Mapping[str, Value] | None = None) -> Network:
    sink = DiagnosticSink(max_errors=limits.errors, max_per_line=limits.per_line, max_per_code=limits.per_code)
    graph: Graph | None = None
    try:
        with _collector_paused():
            graph, sink = build_graph(path, inputs, sink, limits, [Path(p) for p in import_path], text=text,
                                      constants=constants)
            if sink.stopped is None:
                analyse(graph, sink)
    except CheckingStopped:
        pass  # the sink holds the diagnostics up to the limit, the last one saying why it stopped
    if sink.has_errors:
        raise SpecError(sink.sorted(), partial=graph if graph is not None and len(graph) else None)
    assert graph is not None
    return Network(graph, sink.sorted())


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Checking and reporting allocate many small objects that all stay alive until the result is done:
    the cyclic garbage collector would only rescan them (quadratic on long specs, a third of the run on a
    10,000-layer spec). Paused for the call only: a collector left off would leak every cycle afterwards."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
