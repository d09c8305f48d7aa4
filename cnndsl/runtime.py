"""Run a compiled TVM artifact (`cnndsl compile --to tvm`) with the TVM runtime alone.

    model = cnndsl.runtime.load("build/resnet18")
    logits = model(x)                      # numpy in, numpy out (a tuple for several outputs)

This module imports nothing of cnndsl's compiler (parser, graph, backends): a deployment needs the
artifact directory, numpy and TVM's runtime.

An artifact is native code: `model.so` is loaded into the process and runs with its rights. Load only
artifacts you built or trust. `load` checks that the directory is whole before loading any code: the
manifest's fields and types, and the sha256 of each file against the manifest (a copy cut short, a file
from another build, a damaged disk), and the graph hash the parameters were written with. These checks
catch damage and mix-ups, not a deliberate forgery: whoever can write the directory can rewrite all of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LIBRARY, PARAMS, MANIFEST = "model.so", "params.npz", "manifest.json"
KERNELS = "kernels.fatbin"  # a CUDA artifact's kernels, compiled ahead of time (see _precompiled_kernels)
FORMAT, VERSION = "cnndsl-tvm-artifact", 2
GRAPH_KEY = "__graph_sha256__"  # in params.npz: the network its weights belong to
MAX_MANIFEST_BYTES = 10_000_000


class ArtifactError(Exception):
    """The directory is not a usable artifact, or the inputs do not fit it."""


class Model:
    """A loaded artifact: call it with one numpy array per input (positionally or by name)."""

    def __init__(self, path: Path, manifest: ArtifactManifest, vm: Any, params: list[Any], device: Any):
        self.path, self.manifest, self._vm, self._params, self._device = path, manifest, vm, params, device
        # A batch of None: the artifact takes any batch (compiled with --dynamic-batch).
        self.inputs = manifest.input_shapes
        self.outputs = manifest.output_shapes

    def __call__(self, *arrays: np.ndarray, **named: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        import tvm

        ordered = self._arrange(arrays, named)
        values = [_real_array(name, array) for name, array in zip(self.inputs, ordered, strict=True)]
        args = [tvm.runtime.tensor(np.ascontiguousarray(a, dtype=np.float32), self._device) for a in values]
        result = self._vm["main"](*args, *self._params)
        if len(self.outputs) == 1:
            return result.numpy()
        return tuple(item.numpy() for item in result)

    def on_device(self, *arrays: np.ndarray) -> Any:
        """A call of the network on `arrays`, copied to the device once, that returns when the device is
        done: what a benchmark times (no host-device copies inside the timed loop)."""
        import tvm

        values = [_real_array(name, array) for name, array in zip(self.inputs, self._arrange(arrays, {}), strict=True)]
        args = [tvm.runtime.tensor(np.ascontiguousarray(a, dtype=np.float32), self._device) for a in values]
        main, device, params = self._vm["main"], self._device, self._params

        def call() -> Any:
            result = main(*args, *params)
            device.sync()
            return result

        return call

    def _arrange(self, arrays: tuple[np.ndarray, ...], named: dict[str, np.ndarray]) -> list[np.ndarray]:
        if arrays and named:
            raise ArtifactError("pass the inputs either positionally or by name, not both")
        if named:
            unknown = set(named) - set(self.inputs)
            if unknown or len(named) != len(self.inputs):
                raise ArtifactError(f"expected inputs {', '.join(self.inputs)}; got {', '.join(named)}")
            arrays = tuple(named[name] for name in self.inputs)
        if len(arrays) != len(self.inputs):
            raise ArtifactError(f"{self.manifest.network} takes {len(self.inputs)} input(s) "
                                f"({', '.join(self.inputs)}); got {len(arrays)}")
        batches = set()
        for (name, shape), array in zip(self.inputs.items(), arrays, strict=True):
            given = tuple(np.shape(array))
            fits = len(given) == len(shape) and all(d is None or d == g for d, g in zip(shape, given, strict=False))
            if not fits or (shape[0] is None and given[0] < 1):
                # shapes written out here: the runtime imports no cnndsl module
                wanted = " x ".join("N" if d is None else str(d) for d in shape)
                fixed = "any batch N >= 1" if shape[0] is None else "the artifact's batch is fixed at compile time"
                raise ArtifactError(f"input `{name}` must be {wanted} ({fixed}); got {' x '.join(map(str, given))}")
            batches.add(given[0])
        if len(batches) > 1:
            raise ArtifactError(f"the inputs must share one batch; got {', '.join(map(str, sorted(batches)))}")
        return list(arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {'x'.join('N' if d is None else str(d) for d in v)}" for k, v in self.inputs.items())
        return f"<cnndsl artifact {self.manifest.network} ({shapes}) on {self.manifest.target_kind}>"


def _real_array(name: str, array: Any) -> np.ndarray:
    """The input as an array of real numbers (float or integer: converted to float32); complex, bool,
    string and object arrays are refused rather than cast."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":
        raise ArtifactError(f"input `{name}` holds {array.dtype} values; the artifact takes real numbers (float32)")
    return array


# CUDA kernels compiled ahead of time, by the sha256 of the CUDA source they were compiled from.
_KERNEL_BINARIES: dict[str, bytes] = {}


def _precompiled_kernels(path: Path, manifest: ArtifactManifest) -> None:
    """Hand TVM the artifact's precompiled kernels. TVM 0.27 on a machine without a CUDA driver (where
    artifacts are usually compiled) keeps the kernels' CUDA source in the library and compiles it when
    the library is loaded, through the `tvm_callback_cuda_compile` hook: that needs TVM's compiler and
    NVRTC on the deployment machine. `cnndsl compile` compiles that source with nvcc beforehand
    (kernels.fatbin, its source's sha256 in the manifest); this hook returns it for that source, and
    leaves any other source to the hook it replaced (TVM's own, where installed)."""
    kernels = manifest.cuda_kernels
    if kernels is None:
        raise ArtifactError(f"{path.parent / MANIFEST} lists {KERNELS} without `cuda_kernels.source_sha256`")
    register_kernels(kernels["source_sha256"], path.read_bytes())


def register_kernels(source_sha256: str, binary: bytes) -> None:
    """Have TVM use `binary` (a cubin or fatbin) wherever it would compile the CUDA source of that sha256."""
    if not _KERNEL_BINARIES:
        _install_kernel_hook()
    _KERNEL_BINARIES[source_sha256] = binary


def _install_kernel_hook() -> None:
    import tvm_ffi

    with contextlib.suppress(ImportError):  # TVM's own hook registers itself on import: let it, then wrap it
        import tvm.support.nvcc  # noqa: F401
    previous = tvm_ffi.get_global_func("tvm_callback_cuda_compile", allow_missing=True)

    def compile_or_look_up(code: str, *rest: Any) -> bytes:
        binary = _KERNEL_BINARIES.get(hashlib.sha256(code.encode()).hexdigest())
        if binary is not None:
            return binary
        if previous is None:
            raise ArtifactError("a CUDA library needs its kernels compiled, and no precompiled kernels match "
                                "its source: compile the artifact again with nvcc installed")
        return previous(code, *rest)

    tvm_ffi.register_global_func("tvm_callback_cuda_compile", compile_or_look_up, override=True)


def _cuda_device(tvm: Any, device_id: int) -> tuple[Any, str]:
    """The CUDA device, and why it is missing where it is. A runtime-only TVM (a deployment without
    libtvm_compiler.so, or TVM_USE_RUNTIME_LIB=1) never loads its CUDA library, libtvm_runtime_cuda.so:
    TVM 0.27 loads it from its compiler-side backend package, which a runtime-only install cannot import.
    Loading it registers the CUDA device."""
    import ctypes

    device = tvm.cuda(device_id)
    if device.exist:
        return device, ""
    runtime_lib = getattr(getattr(tvm, "base", None), "_LOADED_LIBS", {}).get("tvm_runtime")
    if runtime_lib is None:
        return device, ""
    sidecar = Path(runtime_lib._name).resolve().parent / "libtvm_runtime_cuda.so"
    try:
        ctypes.CDLL(str(sidecar), mode=ctypes.RTLD_LOCAL)
    except OSError as exc:  # absent, or its CUDA libraries (libcudart, the driver's libcuda) are not found
        return device, f" (TVM's CUDA runtime could not be loaded: {exc})"
    return tvm.cuda(device_id), ""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_artifact(path: Path) -> bool:
    """Whether `path` holds a cnndsl artifact manifest (of any version): what `compile -o` may replace."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def read_manifest(path: Path) -> ArtifactManifest:
    """The artifact's manifest, checked field by field (ArtifactError names the first bad one)."""
    where = path / MANIFEST
    if not where.exists():
        raise ArtifactError(f"{path} is not a cnndsl artifact directory (no readable {MANIFEST})")
    _regular(where)
    try:
        if where.stat().st_size > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{where} is larger than a manifest can be")
        fields = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not a cnndsl artifact directory (no readable {MANIFEST}: {exc})") from exc
    if not isinstance(fields, dict) or fields.get("format") != FORMAT:
        raise ArtifactError(f"{where} is not a cnndsl TVM artifact manifest")
    if fields.get("version") != VERSION:
        raise ArtifactError(f"{path} is an artifact of format version {fields.get('version')!r}; this cnndsl runs "
                            f"version {VERSION}: compile it again")
    return ArtifactManifest.from_fields(fields, str(where))


def _shapes(value: object) -> bool:
    """Names to positive dimensions; the batch (the first) may be null: any batch (`--dynamic-batch`)."""
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, list) and bool(v) and all(
            (type(d) is int and d > 0) or (d is None and axis == 0) for axis, d in enumerate(v))
        for k, v in value.items())


def _hex(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _rule(check: Callable[[Any], bool], wanted: str) -> dict[str, Any]:
    """A manifest field's rule: what `from_fields` checks, and how its error describes a valid value."""
    return {"check": check, "wanted": wanted}


def _is(kind: type | tuple[type, ...]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, kind)


@dataclass(frozen=True)
class ArtifactManifest:
    """`manifest.json` of a TVM artifact: written by `cnndsl compile` (backends/tvm/compile.py) with
    `write`, read back and checked by `from_fields`, one rule per field, in this one class."""

    network: str = field(metadata=_rule(_is(str), "a string"))
    graph_sha256: str = field(metadata=_rule(_hex, "a sha256 in hex"))
    target_kind: str = field(metadata=_rule(_is(str), "a string"))
    device: str = field(metadata=_rule(lambda v: v in ("cpu", "cuda"), "`cpu` or `cuda`"))
    dtype: str = field(metadata=_rule(lambda v: v == "float32", "`float32`"))
    inputs: dict[str, list[int | None]] = field(metadata=_rule(_shapes, "a map of input names to positive dimensions"))
    outputs: dict[str, list[int | None]] = field(metadata=_rule(_shapes,
                                                                "a map of output names to positive dimensions"))
    params: list[str] = field(metadata=_rule(lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v),
                                             "a list of names"))
    files: dict[str, str] = field(metadata=_rule(
        lambda v: isinstance(v, dict) and set(v) in ({LIBRARY, PARAMS}, {LIBRARY, PARAMS, KERNELS})
        and all(map(_hex, v.values())), f"the sha256 of {LIBRARY}, {PARAMS} (and {KERNELS})"))
    # facts for people and tools, with defaults (an artifact written before they were recorded still loads)
    target: str = field(default="", metadata=_rule(_is(str), "a string"))
    layout: str = field(default="", metadata=_rule(_is(str), "a string"))
    cuda_graph: bool = field(default=False, metadata=_rule(_is(bool), "`true` or `false`"))
    tuning: dict[str, Any] | None = field(default=None, metadata=_rule(_is((dict, type(None))), "a map or null"))
    tvm: str = field(default="", metadata=_rule(_is(str), "a string"))
    # a CUDA artifact's precompiled kernels: `source_sha256` of the CUDA source they were compiled from, `arch`
    cuda_kernels: dict[str, Any] | None = field(default=None, metadata=_rule(
        lambda v: v is None or (isinstance(v, dict) and _hex(v.get("source_sha256"))),
        "null or a map with the kernels' `source_sha256`"))

    @classmethod
    def from_fields(cls, fields: dict[str, Any], where: str) -> ArtifactManifest:
        """The manifest from its JSON fields; ArtifactError names the first missing or invalid one."""
        values = {}
        for item in dataclasses.fields(cls):
            if item.name not in fields:
                if item.default is dataclasses.MISSING:
                    raise ArtifactError(f"{where} has no `{item.name}` field (a damaged or hand-edited manifest)")
                continue
            value = fields[item.name]
            if not item.metadata["check"](value):
                raise ArtifactError(f"{where}: `{item.name}` must be {item.metadata['wanted']}; "
                                    f"got {str(value)[:80]!r}")
            values[item.name] = value
        manifest = cls(**values)
        if (KERNELS in manifest.files) != (manifest.cuda_kernels is not None):
            raise ArtifactError(f"{where} lists {KERNELS} without `cuda_kernels`, or the reverse")
        return manifest

    def write(self, directory: Path) -> None:
        fields = {"format": FORMAT, "version": VERSION, **dataclasses.asdict(self)}
        if self.cuda_kernels is None:
            del fields["cuda_kernels"]
        (directory / MANIFEST).write_text(json.dumps(fields, indent=1) + "\n")

    @property
    def input_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """Each input's batched shape; a batch of None: any batch (compiled with --dynamic-batch)."""
        return {name: tuple(shape) for name, shape in self.inputs.items()}

    @property
    def output_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {name: tuple(shape) for name, shape in self.outputs.items()}


def _regular(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path} is missing: the artifact is incomplete") from exc
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} cannot be read: {exc}") from exc
    if not stat.S_ISREG(mode):
        raise ArtifactError(f"{path} is not a regular file")


def verify_files(path: Path, manifest: ArtifactManifest) -> None:
    """Each file's sha256 against the manifest, before any of it is loaded."""
    for name, expected in manifest.files.items():
        _regular(path / name)
        if file_sha256(path / name) != expected:
            raise ArtifactError(f"{path / name} does not match its manifest (sha256 differs): the file is damaged "
                                "or comes from another build; compile the artifact again")


def _read_params(path: Path, manifest: ArtifactManifest) -> dict[str, np.ndarray]:
    try:
        with np.load(path / PARAMS, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{path / PARAMS} cannot be read as parameters: {type(exc).__name__}: {exc}") from exc
    graph = arrays.pop(GRAPH_KEY, None)
    if graph is None or str(graph) != manifest.graph_sha256:
        raise ArtifactError(f"{path / PARAMS} belongs to another network than {path / MANIFEST} (graph hash differs)")
    if list(arrays) != manifest.params:
        raise ArtifactError(f"{path / PARAMS} holds {len(arrays)} arrays; the manifest lists {len(manifest.params)} "
                            "in another order or with other names")
    return arrays


def load(path: str | Path, device_id: int = 0) -> Model:
    """Load an artifact directory after checking that it is whole (see the module's docstring)."""
    try:
        import tvm
        import tvm.runtime.vm  # noqa: F401  (a runtime-only TVM install does not import it by itself)
        from tvm import runtime
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("tvm", "tvm_ffi"):
            raise
        raise ModuleNotFoundError(f"running a compiled artifact needs TVM's runtime (`{exc.name}` is not installed "
                                  "here); install with: pip install 'cnndsl[tvm]'", name=exc.name) from exc

    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    arrays = _read_params(path, manifest)
    device, why = _cuda_device(tvm, device_id) if manifest.device == "cuda" else (tvm.cpu(device_id), "")
    if not device.exist:
        raise ArtifactError(f"{path} was compiled for {manifest.device}, and this machine has no such device{why}")
    if KERNELS in manifest.files:
        _precompiled_kernels(path / KERNELS, manifest)
    try:
        library = runtime.load_module(str(path / LIBRARY))
        vm = runtime.vm.VirtualMachine(library, device)
    except Exception as exc:  # TVM raises its own error types for a library it cannot load
        raise ArtifactError(f"{path / LIBRARY} cannot be loaded by this TVM runtime ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    params = [tvm.runtime.tensor(arrays[name], device) for name in manifest.params]
    return Model(path, manifest, vm, params, device)
