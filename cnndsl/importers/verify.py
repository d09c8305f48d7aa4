"""An imported spec against its source: the same parameters, the source's own weights loading strictly
into the compiled module, the same outputs. An import that fails any of them is an error (E704), never
a spec that computes something else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..diagnostics import Code, SpecError
from .network import ImportedNetwork, import_error

RELATIVE_TOLERANCE = 1e-5  # of the largest output magnitude: same ops in the same order, float32


@dataclass(frozen=True)
class Verified:
    params: int
    max_relative_difference: float  # between the source's outputs and the compiled spec's


def mismatch(network: ImportedNetwork, message: str) -> SpecError:
    return SpecError([import_error(Code.E704, message, network.source,
                                   hint="a cnndsl bug: please report it with the source; --no-verify writes the spec "
                                   "anyway")])


def verify_params(network: ImportedNetwork, spec_params: int | None) -> None:
    if network.source_params is not None and network.source_params != spec_params:
        raise mismatch(network, f"the spec has {spec_params:,} parameters, {network.source} "
                        f"{network.source_params:,} (of the modules that run in eval mode)")


def verify_torch(network: ImportedNetwork, compiled: Any, model: Any, state: dict[str, Any],
                 inputs: dict[str, tuple[int, ...]]) -> float:
    """Loads `state` (the source's state_dict, training-only parts left out) strictly into `compiled` and
    compares the two modules' outputs on one random input; the largest difference relative to the
    largest output."""
    import torch

    try:
        compiled.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise mismatch(network, f"the source's state_dict does not load into the compiled spec: "
                        f"{str(exc).splitlines()[0]}") from None
    generator = torch.Generator().manual_seed(0)
    examples = [torch.rand(2, *shape, generator=generator) for shape in inputs.values()]
    with torch.no_grad():
        expected = _tensors(model.eval()(*examples))
        got = _tensors(compiled.eval()(*examples))
    return _compare(network, expected, got)


def _compare(network: ImportedNetwork, expected: list[Any], got: list[Any]) -> float:
    """The largest difference of the outputs relative to the largest output; E704 past the tolerance."""
    if len(expected) != len(got):
        raise mismatch(network, f"the source returns {len(expected)} tensors, the spec {len(got)}")
    worst = 0.0
    for e, g in zip(expected, got, strict=True):
        if e.shape != g.shape:
            raise mismatch(network, f"an output of shape {tuple(e.shape)} in the source is {tuple(g.shape)} "
                            "in the spec")
        scale = float(e.abs().max()) or 1.0
        worst = max(worst, float((e - g).abs().max()) / scale)
    if worst > RELATIVE_TOLERANCE:
        raise mismatch(network, f"the outputs differ by {worst:.2e} of their largest value "
                        f"(tolerance {RELATIVE_TOLERANCE:.0e})")
    return worst


def _tensors(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return [value]


def load_source_weights(network: ImportedNetwork, compiled: Any, what: str) -> None:
    """The arrays each call was made from, loaded into the compiled spec by the layer's written name: every
    tensor of the spec must be given (but batch norm's step counter, which no format keeps)."""
    import numpy as np
    import torch

    state = {f"{call.path_as_written}.{key}": torch.from_numpy(np.array(value, dtype=np.float32))
             for call in network.calls for key, value in call.weights}
    missing, unexpected = compiled.load_state_dict(state, strict=False)
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise mismatch(network, f"{what} do not fill the compiled spec: missing {missing[:3]}, "
                       f"unexpected {unexpected[:3]}")


def verify_onnx(network: ImportedNetwork, compiled: Any, path: str) -> float:
    """Loads the ONNX initializers each layer was made from into `compiled` (every tensor of the spec but
    batch norm's step counter must be given) and compares its outputs with onnxruntime's on the model."""
    import numpy as np
    import onnxruntime
    import torch

    load_source_weights(network, compiled, "the model's initializers")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    generator = np.random.default_rng(0)
    feeds = {i.tensor: generator.random((1, *i.shape), dtype=np.float32) for i in network.inputs}
    expected = session.run(None, feeds)
    with torch.no_grad():
        got = _tensors(compiled.eval()(*(torch.from_numpy(feeds[i.tensor]) for i in network.inputs)))
    return _compare(network, [torch.from_numpy(np.asarray(e)) for e in expected], got)


def verify_keras(network: ImportedNetwork, compiled: Any, path: str) -> float:
    """Loads the Keras weights each layer was made from into `compiled` and compares its outputs with Keras's
    own (its torch backend; the model loaded with safe_mode, which refuses code in the file) on one random
    input, channels-last for Keras and channels-first for the spec."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import numpy as np
    import torch

    load_source_weights(network, compiled, "the Keras weights")
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    generator = np.random.default_rng(0)
    channels_last = [generator.random((2, *i.shape[1:], i.shape[0]) if len(i.shape) > 1 else (2, *i.shape),
                                      dtype=np.float32) for i in network.inputs]
    expected = model(channels_last if len(channels_last) > 1 else channels_last[0], training=False)
    expected_list = [np.asarray(keras.ops.convert_to_numpy(e)) for e in _tensors(expected)]
    with torch.no_grad():
        got = _tensors(compiled.eval()(*(torch.from_numpy(np.moveaxis(x, -1, 1).copy()) if x.ndim > 2 else
                                         torch.from_numpy(x) for x in channels_last)))
    got = [torch.movedim(g, 1, -1) if g.dim() > 2 else g for g in got]
    return _compare(network, [torch.from_numpy(e) for e in expected_list], got)
