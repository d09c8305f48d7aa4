"""Hostile files around a spec: damaged artifacts, inputs that are not real arrays, weights that cannot be
weights, outputs that cannot be written. Each is a usage error (exit 2) or a weights error (E601, exit 1)
with a message naming the file, never a traceback (docs/robustness.md)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cnndsl.backends import tvm as tvm_backend
from cnndsl.backends.tvm.tune import LOCK
from cnndsl.cli import main
from cnndsl.diagnostics import UsageError
from cnndsl.runtime import MANIFEST, PARAMS, ArtifactError, file_sha256
from cnndsl.runtime import load as load_artifact
from tests.conftest import SpecFiles

pytestmark = pytest.mark.tvm  # compiles with TVM: not in `make test-fast`

runner = CliRunner()
NET = "input x: 4 x 6\noutput y = x -> conv1d(8, 3) -> relu\n"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artifact")
    (root / "net.cnn").write_text(NET)
    result = runner.invoke(main, ["compile", str(root / "net.cnn"), "--to", "tvm", "-o", str(root / "net")])
    assert result.exit_code == 0, result.output
    np.save(root / "x.npy", np.ones((1, 4, 6), dtype=np.float32))
    return root / "net"


def _copy(artifact: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(artifact, copy)
    return copy


def _rehash(path: Path, edit: Callable[[dict], None] | None = None) -> None:
    """Make the manifest agree with the files again (after a consistent but wrong edit), optionally
    editing it."""
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"] = {name: file_sha256(path / name) for name in manifest["files"]}
    if edit:
        edit(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest))


def _garbage(path: Path) -> None:
    path.write_bytes(b"not what it should be")


def _params(path: Path, **changes: object) -> None:
    with np.load(path / PARAMS) as stored:
        arrays = {name: stored[name] for name in stored.files}
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value  # type: ignore[assignment]
    np.savez(path / PARAMS, **arrays)  # type: ignore[arg-type]


def _first_param(path: Path) -> str:
    return str(json.loads((path / MANIFEST).read_text())["params"][0])


# name -> (damage, fragment of the error)
DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "manifest missing": (lambda p: (p / MANIFEST).unlink(), "no readable manifest.json"),
    "manifest not JSON": (lambda p: _garbage(p / MANIFEST), "no readable manifest.json"),
    "manifest a list": (lambda p: (p / MANIFEST).write_text("[1, 2]"), "not a cnndsl TVM artifact manifest"),
    "manifest of an old version": (lambda p: _rehash(p, lambda m: m.update(version=1)), "compile it again"),
    "manifest without inputs": (lambda p: _rehash(p, lambda m: m.pop("inputs")), "has no `inputs` field"),
    "manifest with string shapes": (lambda p: _rehash(p, lambda m: m.update(inputs={"x": ["1", "4"]})),
                                    "`inputs` must be a map of input names to positive dimensions"),
    "manifest with a bad device": (lambda p: _rehash(p, lambda m: m.update(device="tpu")), "`device` must be"),
    "manifest without file hashes": (lambda p: _rehash(p, lambda m: m.pop("files")), "has no `files` field"),
    "params missing": (lambda p: (p / PARAMS).unlink(), "params.npz is missing"),
    "params damaged": (lambda p: _garbage(p / PARAMS), "params.npz does not match its manifest"),
    "params not a zip": (lambda p: (_garbage(p / PARAMS), _rehash(p)), "cannot be read as parameters"),
    "params of object arrays": (lambda p: (_params(p, **{_first_param(p): np.array([{}], dtype=object)}), _rehash(p)),
                                "cannot be read as parameters"),
    "params of another network": (lambda p: (_params(p, __graph_sha256__=np.array("0" * 64)), _rehash(p)),
                                  "belongs to another network"),
    "params in another order": (lambda p: _rehash(p, lambda m: m.update(params=m["params"][::-1])),
                                "in another order or with other names"),
    "params one short": (lambda p: (_params(p, **{_first_param(p): None}), _rehash(p)), "in another order"),
    "library missing": (lambda p: (p / "model.so").unlink(), "model.so is missing"),
    "library damaged": (lambda p: _garbage(p / "model.so"), "model.so does not match its manifest"),
    "library not a library": (lambda p: (_garbage(p / "model.so"), _rehash(p)), "cannot be loaded by this TVM runtime"),
    "library a directory": (lambda p: ((p / "model.so").unlink(), (p / "model.so").mkdir()), "is not a regular file"),
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_a_damaged_artifact_is_refused_before_any_code_loads(artifact: Path, tmp_path: Path, name: str) -> None:
    damage, fragment = DAMAGE[name]
    copy = _copy(artifact, tmp_path)
    damage(copy)
    with pytest.raises(ArtifactError) as info:
        load_artifact(copy)
    assert fragment in str(info.value)
    result = runner.invoke(main, ["run", str(copy), "--input", str(artifact.parent / "x.npy")])
    assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("array", "fragment"), [
    (np.full((1, 4, 6), "abc"), "holds <U3 values"),
    (np.ones((1, 4, 6), dtype=np.complex64), "holds complex64 values"),
    (np.ones((1, 4, 6), dtype=bool), "holds bool values"),
    (np.ones((1, 4, 5), dtype=np.float32), "must be 1 x 4 x 6"),
])
def test_inputs_that_are_not_real_arrays_are_refused(artifact: Path, tmp_path: Path, array: np.ndarray,
                                                     fragment: str) -> None:
    np.save(tmp_path / "in.npy", array)
    result = runner.invoke(main, ["run", str(artifact), "--input", str(tmp_path / "in.npy")])
    assert result.exit_code == 2 and fragment in result.output, result.output


def test_object_and_special_inputs_are_refused(artifact: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "objects.npy", np.array([{}, []], dtype=object), allow_pickle=True)
    os.mkfifo(tmp_path / "fifo.npy")
    for path, fragment in ((tmp_path / "objects.npy", "cannot read"), (tmp_path / "fifo.npy", "is a FIFO")):
        result = runner.invoke(main, ["run", str(artifact), "--input", str(path)])
        assert result.exit_code == 2 and fragment in result.output, result.output


def test_integer_inputs_are_converted(artifact: Path, tmp_path: Path) -> None:
    model = load_artifact(artifact)
    np.testing.assert_allclose(model(np.ones((1, 4, 6), dtype=np.int64)), model(np.ones((1, 4, 6), np.float32)))


def test_run_writes_exactly_the_named_output(artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.bin"
    result = runner.invoke(main, ["run", str(artifact), "--input", str(artifact.parent / "x.npy"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert np.load(out).shape == (1, 8, 4) and not (tmp_path / "result.bin.npy").exists()
    for target, fragment in (("/dev/full", "is a device"), (str(tmp_path), "is a directory"),
                             ("/proc/cnndsl/out.npy", "cannot write")):
        result = runner.invoke(main, ["run", str(artifact), "--input", str(artifact.parent / "x.npy"), "-o", target])
        assert result.exit_code == 2 and fragment in result.output, result.output


def test_compile_outputs_that_cannot_be_written(specs: SpecFiles, tmp_path: Path) -> None:
    spec = specs.write(NET, "net.cnn")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    (tmp_path / "file").write_text("a file")
    cases = [
        (["-o", str(tmp_path)], "is a directory"),
        (["-o", "/dev/full"], "is a device"),
        (["-o", "/proc/cnndsl.pt2"], "cannot write"),
        (["-o", "/sys/cnndsl.onnx"], "cannot write"),
        (["--to", "tvm", "-o", str(tmp_path / "file")], "must be a directory"),
        (["--to", "tvm", "-o", str(tmp_path / "notes")], "is not an artifact cnndsl wrote"),
        (["--seed", "1" * 20], "--seed"),
        (["--batch", "100000000000"], "out of memory while compiling"),
        (["--to", "tvm", "--batch", "100000000"], "TVM kernels index tensors of at most 2,147,483,647"),
        (["--to", "tvm", "--target", '{"kind": "llvm", "mcpu": "bogus"}'], "is not a CPU LLVM knows"),
    ]
    for args, fragment in cases:
        result = runner.invoke(main, ["compile", str(spec), *args])
        assert result.exit_code == 2 and fragment in result.output and "bug" not in result.output, (args, result.output)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_an_artifact_is_replaced_whole_or_not_at_all(specs: SpecFiles, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    network = specs.load(NET)
    out = tmp_path / "build" / "net"
    tvm_backend.compile_network(network.graph, network.weights(seed=1), "llvm", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("cnndsl.backends.tvm.compile.np.savez", crash)
    with pytest.raises(UsageError, match="No space left on device"):
        tvm_backend.compile_network(network.graph, network.weights(seed=2), "llvm", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in out.parent.iterdir()] == ["net"]  # no temporary directory left behind
    monkeypatch.undo()
    tvm_backend.compile_network(network.graph, network.weights(seed=2), "llvm", out)
    assert (out / PARAMS).read_bytes() != before[PARAMS]
    load_artifact(out)


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda: torch.zeros(8, 4, 3).to_sparse(), "sparse_coo tensor"),
    (lambda: torch.empty(8, 4, 3, device="meta"), "meta tensor"),
    (lambda: torch.full((8, 4, 3), float("nan")), "NaN or infinite values"),
    (lambda: torch.ones(8, 4, 3, dtype=torch.complex64), "holds complex64 values"),
    (lambda: torch.ones(8, 4, 3, dtype=torch.bool), "holds bool values"),
    (lambda: torch.ones(8, 4, 3, dtype=torch.int64), "holds int64 values"),
])
def test_weights_that_cannot_be_weights_are_e601(specs: SpecFiles, tmp_path: Path, make: Callable[[], torch.Tensor],
                                                 fragment: str) -> None:
    tensor = make()
    network = specs.load(NET)
    state = network.to_torch().state_dict()
    (key,) = [k for k in state if k.endswith("weight")]
    state[key] = tensor
    torch.save(state, tmp_path / "w.pt")
    result = runner.invoke(main, ["compile", str(specs.root / "model.cnn"), "--weights", str(tmp_path / "w.pt"),
                                  "-o", str(tmp_path / "out.pt2")])
    assert result.exit_code == 1 and "E601" in result.output and fragment in result.output, result.output


def test_float16_weights_are_converted_with_a_warning(specs: SpecFiles, tmp_path: Path) -> None:
    network = specs.load(NET)
    state = {k: v.half() if v.is_floating_point() else v for k, v in network.to_torch().state_dict().items()}
    torch.save(state, tmp_path / "w.pt")
    result = runner.invoke(main, ["compile", str(specs.root / "model.cnn"), "--weights", str(tmp_path / "w.pt"),
                                  "-o", str(tmp_path / "out.pt2")])
    assert result.exit_code == 0 and "are float16; they are converted to float32" in result.output, result.output


def test_weights_from_a_fifo_are_refused(specs: SpecFiles, tmp_path: Path) -> None:
    specs.write(NET)
    os.mkfifo(tmp_path / "w.pt")
    result = runner.invoke(main, ["compile", str(specs.root / "model.cnn"), "--weights", str(tmp_path / "w.pt")])
    assert result.exit_code == 2 and "is a FIFO" in result.output


def test_darknet_import_does_not_overwrite_without_force(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n\n[convolutional]\nfilters=8\nsize=3\nstride=1\n"
                   "pad=1\nactivation=leaky\n")
    (tmp_path / "tiny.cnn").write_text("# mine\n")
    result = runner.invoke(main, ["import", "darknet", str(cfg), "-o", str(tmp_path / "tiny.cnn")])
    assert result.exit_code == 2 and "pass --force" in result.output
    assert (tmp_path / "tiny.cnn").read_text() == "# mine\n"
    result = runner.invoke(main, ["import", "darknet", str(cfg), "-o", str(tmp_path / "tiny.cnn"), "--force"])
    assert result.exit_code == 0, result.output


def test_darknet_route_without_layers_is_e701(tmp_path: Path) -> None:
    cfg = tmp_path / "route.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n\n[convolutional]\nfilters=8\nsize=3\nstride=1\n"
                   "pad=1\nactivation=leaky\n\n[route]\nlayers=\n")
    result = runner.invoke(main, ["import", "darknet", str(cfg), "-o", str(tmp_path / "route.cnn")])
    assert result.exit_code == 1 and "E701" in result.output and "lists no layer" in result.output


def test_a_tuning_database_in_use_is_refused(specs: SpecFiles, tmp_path: Path) -> None:
    database = tmp_path / "db"
    database.mkdir()
    with (database / LOCK).open("a") as handle:  # as another process holding it would
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = runner.invoke(main, ["tune", str(specs.write(NET)), "--tune-db", str(database), "--trials", "4"])
    assert result.exit_code == 2 and "is in use by another cnndsl run" in result.output, result.output


def test_the_api_reads_weights_from_regular_files_only(specs: SpecFiles) -> None:
    network = specs.load(NET)
    with pytest.raises(UsageError, match="is a device"):
        network.to_torch(weights="/dev/zero")


def test_adaptive_max_pooling_past_the_tvm_window_limit_is_e600(specs: SpecFiles) -> None:
    spec = specs.write("input x: 1 x 8\noutput y = x -> adaptive_maxpool(5000)\n")
    result = runner.invoke(main, ["compile", str(spec), "--to", "tvm"])
    assert result.exit_code == 1 and "E600" in result.output and "at most 1,024" in result.output, result.output
