"""Run a compiled TVM artifact (`cnndsl compile --to tvm`) with the TVM runtime alone.

    model = cnndsl.runtime.load("build/resnet18")
    logits = model(x)                      # numpy in, numpy out (a tuple for several outputs)

This module imports nothing of cnndsl's compiler (parser, graph, backends): a deployment needs the
artifact directory, numpy and TVM's runtime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

LIBRARY, PARAMS, MANIFEST = "model.so", "params.npz", "manifest.json"


class ArtifactError(Exception):
    """The directory is not a usable artifact, or the inputs do not fit it."""


class Model:
    """A loaded artifact: call it with one numpy array per input (positionally or by name)."""

    def __init__(self, path: Path, manifest: dict[str, Any], vm: Any, params: list[Any], device: Any):
        self.path, self.manifest, self._vm, self._params, self._device = path, manifest, vm, params, device
        self.inputs: dict[str, tuple[int, ...]] = {k: tuple(v) for k, v in manifest["inputs"].items()}
        self.outputs: dict[str, tuple[int, ...]] = {k: tuple(v) for k, v in manifest["outputs"].items()}

    def __call__(self, *arrays: np.ndarray, **named: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        import tvm

        values = self._arrange(arrays, named)
        args = [tvm.runtime.tensor(np.ascontiguousarray(a, dtype=np.float32), self._device) for a in values]
        result = self._vm["main"](*args, *self._params)
        if len(self.outputs) == 1:
            return result.numpy()
        return tuple(item.numpy() for item in result)

    def _arrange(self, arrays: tuple[np.ndarray, ...], named: dict[str, np.ndarray]) -> list[np.ndarray]:
        if arrays and named:
            raise ArtifactError("pass the inputs either positionally or by name, not both")
        if named:
            unknown = set(named) - set(self.inputs)
            if unknown or len(named) != len(self.inputs):
                raise ArtifactError(f"expected inputs {', '.join(self.inputs)}; got {', '.join(named)}")
            arrays = tuple(named[name] for name in self.inputs)
        if len(arrays) != len(self.inputs):
            raise ArtifactError(f"{self.manifest['network']} takes {len(self.inputs)} input(s) "
                                f"({', '.join(self.inputs)}); got {len(arrays)}")
        for (name, shape), array in zip(self.inputs.items(), arrays, strict=True):
            if tuple(np.shape(array)) != shape:
                raise ArtifactError(f"input `{name}` must be {' x '.join(map(str, shape))} (the artifact's batch "
                                    f"is fixed at compile time); got {' x '.join(map(str, np.shape(array)))}")
        return list(arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {'x'.join(map(str, v))}" for k, v in self.inputs.items())
        return f"<cnndsl artifact {self.manifest['network']} ({shapes}) on {self.manifest['target_kind']}>"


def load(path: str | Path, device_id: int = 0) -> Model:
    import tvm
    import tvm.runtime.vm  # noqa: F401  (a runtime-only TVM install does not import it by itself)
    from tvm import runtime

    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not a cnndsl artifact directory (no readable {MANIFEST})") from exc
    if manifest.get("format") != "cnndsl-tvm-artifact":
        raise ArtifactError(f"{path / MANIFEST} is not a cnndsl TVM artifact manifest")
    device = tvm.cuda(device_id) if manifest["device"] == "cuda" else tvm.cpu(device_id)
    if not device.exist:
        raise ArtifactError(f"{path} was compiled for {manifest['device']}, and this machine has no such device")
    library = runtime.load_module(str(path / LIBRARY))
    vm = runtime.vm.VirtualMachine(library, device)
    with np.load(path / PARAMS) as stored:
        params = [tvm.runtime.tensor(stored[name], device) for name in manifest["params"]]
    return Model(path, manifest, vm, params, device)
