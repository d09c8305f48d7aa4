"""MetaSchedule tuning (a handful of trials, as CI affords): records are written to the database, a
second compile of the same workloads measures nothing, the tuned artifact still computes what PyTorch
computes, and `cnndsl bench` puts all variants in one table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cnndsl
import cnndsl.runtime
from cnndsl.backends.torch.export import example_inputs
from cnndsl.cli import main
from tests.conftest import SPECS

runner = CliRunner()
pytestmark = pytest.mark.slow  # about two minutes: builds tuning candidates in process


def test_tuning_is_recorded_reused_and_correct(tmp_path: Path) -> None:
    database = tmp_path / "tuning"
    first = tmp_path / "first"
    args = ["compile", str(SPECS / "mnist1d.cnn"), "--to", "tvm", "--tune", "--trials", "20",
            "--tune-db", str(database)]
    result = runner.invoke(main, [*args, "-o", str(first)])
    assert result.exit_code == 0, result.output
    tuning = json.loads((first / "manifest.json").read_text())["tuning"]
    assert tuning["tasks"] >= 4 and tuning["tuned_now"] == tuning["tasks"] and tuning["trials"] >= 16
    records = (database / "database_tuning_record.json").read_text().splitlines()
    assert len(records) >= tuning["trials"] // 2  # failed candidates are not recorded

    second = tmp_path / "second"
    result = runner.invoke(main, [*args, "-o", str(second)])
    assert result.exit_code == 0, result.output
    assert "already in the tuning database" in result.stdout
    assert json.loads((second / "manifest.json").read_text())["tuning"]["trials"] == 0
    assert (database / "database_tuning_record.json").read_text().splitlines() == records

    network = cnndsl.load(SPECS / "mnist1d.cnn")
    (x,) = example_inputs(network.graph, batch=1)
    with torch.no_grad():
        expected = network.to_torch(seed=0)(x).numpy()
    np.testing.assert_allclose(cnndsl.runtime.load(second)(x.numpy()), expected, rtol=0, atol=1e-4)

    result = runner.invoke(main, ["bench", str(SPECS / "mnist1d.cnn"), "--batch", "1", "--rounds", "2",
                                  "--no-compile", "--tune-db", str(database)])
    assert result.exit_code == 0, result.output
    for variant in ("PyTorch eager", "TVM untuned", "TVM tuned"):
        assert f"| 1 | {variant} |" in result.stdout
    assert "DIFFERS" not in result.stdout
