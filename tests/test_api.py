"""The Python API the CLI is a shell over: loads, export, to_tvm, the package's names, and what a user
without an optional extra installed is told."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
import torch

import cnndsl
from cnndsl.backends.torch.export import example_inputs
from tests.conftest import ROOT, SpecFiles

NET = "input x: 3 x 16 x 16\noutput y = x -> conv(8, 3, padding=1) -> batchnorm -> relu -> global_avgpool -> flatten " \
      "-> linear(5)\n"


def test_the_package_lists_its_api() -> None:
    names = dir(cnndsl)
    api = {"load", "loads", "Network", "SpecError", "UsageError", "Diagnostic", "MissingExtra", "runtime", "sizes"}
    assert api <= set(names)
    assert "TYPE_CHECKING" not in names and "_LAZY" not in names  # what tab completion offers is the API
    assert cnndsl.runtime.load is not None and callable(cnndsl.loads)


def test_loads_checks_a_string_as_load_checks_its_file(specs: SpecFiles, tmp_path: Path) -> None:
    (tmp_path / "blocks.cnn").write_text("block cbr(c) {\n  return in -> conv(c, 3, padding=1) -> batchnorm -> relu\n"
                                         "}\n")
    text = 'import "blocks.cnn"\n' + NET.replace("-> conv(8, 3, padding=1) -> batchnorm -> relu", "-> cbr(8)")
    from_string = cnndsl.loads(text, name="net.cnn", base=tmp_path)
    from_file = specs.load(text, name="net.cnn")
    assert from_string.name == "net"
    assert from_string.report().model_dump() == from_file.report().model_dump()

    with pytest.raises(cnndsl.SpecError) as info:
        cnndsl.loads(NET.replace("conv(8, 3", "conv(8, 30"), name="typo.cnn")
    location = info.value.diagnostics[0].location
    assert location is not None and (location.file, location.line) == ("typo.cnn", 2)
    with pytest.raises(cnndsl.UsageError, match="binary file"):
        cnndsl.loads("input x: 3\x00")


def test_export_writes_each_kind_with_a_dynamic_batch(specs: SpecFiles, tmp_path: Path) -> None:
    network = specs.load(NET)
    module = network.to_torch()
    assert network.export(tmp_path / "net.pt2", dynamic_batch=True) == tmp_path / "net.pt2"
    program = torch.export.load(str(tmp_path / "net.pt2")).module()
    for batch in (1, 7):
        (x,) = example_inputs(network.graph, batch=batch)
        torch.testing.assert_close(program(x), module(x), rtol=0, atol=1e-6)
    network.export(tmp_path / "net.onnx", batch=2)
    assert (tmp_path / "net.onnx").stat().st_size > 0
    with pytest.raises(ValueError, match="name it .onnx or .pt2"):
        network.export(tmp_path / "net.bin")


@pytest.mark.tvm
def test_to_tvm_returns_an_artifact_that_runs(specs: SpecFiles, tmp_path: Path) -> None:
    network = specs.load(NET)
    compiled = network.to_tvm("llvm", tmp_path / "artifact", batch=2)
    (x,) = example_inputs(network.graph, batch=2)
    np.testing.assert_allclose(compiled.load()(x.numpy()), network.to_torch()(x).detach().numpy(), atol=1e-5)


# An import hook making packages look uninstalled, for a CLI or Python run in a child process.
BLOCKER = """
import importlib.abc, sys
class Uninstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
        return None
sys.meta_path.insert(0, Uninstalled())
"""


def run_without(blocked: set[str], code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    program = f"BLOCKED = {sorted(blocked)!r}\n{BLOCKER}\n{code}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120, check=False)


def cli(*args: str) -> str:
    return f"import sys; sys.argv = ['cnndsl', *{list(args)!r}]; from cnndsl.cli import run; run()"


@pytest.mark.parametrize(("blocked", "args", "extra"), [
    ({"torch"}, ("compile", "net.cnn", "--to", "torch"), "torch"),
    ({"onnx", "onnxscript"}, ("compile", "net.cnn", "-o", "net.onnx"), "onnx"),
    ({"tvm", "tvm_ffi"}, ("compile", "net.cnn", "--to", "tvm"), "tvm"),
    ({"tvm", "tvm_ffi"}, ("tune", "net.cnn", "--trials", "1"), "tvm"),
    ({"tvm", "tvm_ffi"}, ("run", "build/net"), "tvm"),
    ({"pygls", "lsprotocol"}, ("lsp",), "lsp"),
], ids=["compile-torch", "compile-onnx", "compile-tvm", "tune", "run", "lsp"])
def test_a_backend_without_its_extra_says_what_to_install(tmp_path: Path, blocked: set[str], args: tuple[str, ...],
                                                          extra: str) -> None:
    (tmp_path / "net.cnn").write_text(NET)
    result = run_without(blocked, cli(*args), tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"install with: pip install 'cnndsl[{extra}]'" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("net.onnx*")) and not (tmp_path / "build").exists()


def test_the_python_api_without_torch_raises_an_import_error_that_says_what_to_install(tmp_path: Path) -> None:
    code = ("import cnndsl\nnet = cnndsl.loads(" + repr(NET) + ")\nprint(net.report().totals.params)\n"
            "try:\n    net.to_torch()\nexcept ImportError as exc:\n    print(type(exc).__name__, exc)\n")
    result = run_without({"torch"}, code, tmp_path)
    assert result.returncode == 0, result.stderr
    checked, error = result.stdout.splitlines()
    assert int(checked) > 0  # checking needs no extra
    assert error.startswith("MissingExtra compiling to PyTorch needs `torch`") and "cnndsl[torch]" in error


@pytest.mark.slow
def test_a_fresh_environment_with_the_core_install_only(tmp_path: Path) -> None:
    """A real virtual environment with cnndsl's core dependencies only (from the package index): `check`
    works, each backend command names its extra."""
    venv.create(tmp_path / "env", with_pip=True)
    python = tmp_path / "env" / "bin" / "python"
    core = ["lark>=1.2,<2", "pydantic>=2.6,<3", "networkx>=3.2", "click>=8.1"]
    subprocess.run([python, "-m", "pip", "install", "-q", *core], check=True, timeout=600)
    (tmp_path / "net.cnn").write_text(NET)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cnndsl_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, "-c", cli(*args)], capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=120, check=False)

    assert cnndsl_cli("check", "net.cnn").returncode == 0
    for args, extra in [(("compile", "net.cnn"), "torch"), (("compile", "net.cnn", "--to", "tvm"), "tvm"),
                        (("run", "build/net"), "tvm")]:
        result = cnndsl_cli(*args)
        assert result.returncode == 2 and f"pip install 'cnndsl[{extra}]'" in result.stderr, result.stderr
