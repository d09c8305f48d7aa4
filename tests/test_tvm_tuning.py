"""MetaSchedule tuning (a handful of trials, as CI affords): records are written to the database, a
second compile of the same workloads measures nothing, the tuned artifact still computes what PyTorch
computes, and `cnndsl bench` puts all variants in one table. A budget too small for every task says so,
and the tuned build's NHWC layout (2-D convolutions, LeNet-5) computes what PyTorch computes."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cnndsl
import cnndsl.runtime
from cnndsl.backends.torch.export import example_inputs
from cnndsl.cli import main
from tests.conftest import SPECS, assert_artifact_runs_without_the_compiler

runner = CliRunner()
pytestmark = pytest.mark.slow  # about five minutes: tuning builds and measures real candidates


def test_tuning_is_recorded_reused_and_correct(tmp_path: Path) -> None:
    database = tmp_path / "tuning"
    first = tmp_path / "first"
    args = ["compile", str(SPECS / "mnist1d.cnn"), "--to", "tvm", "--tune", "--trials", "20",
            "--tune-db", str(database)]
    # the process's logging is the user's: MetaSchedule's own set-up closed every handler (pytest lost its
    # capture stream once absl, with Keras, had a handler on it)
    users_handler = logging.FileHandler(tmp_path / "users.log")  # closing it drops its stream
    try:
        result = runner.invoke(main, [*args, "-o", str(first)])
        assert users_handler.stream is not None and not users_handler.stream.closed
    finally:
        users_handler.close()
    assert result.exit_code == 0, result.output
    assert list((database / "logs").glob("task_*.log")) and (database / "logs" / "task_scheduler.log").exists()
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


def test_a_budget_too_small_for_every_task_warns_and_still_computes_right(tmp_path: Path) -> None:
    out = tmp_path / "lenet5"
    result = runner.invoke(main, ["compile", str(SPECS / "lenet5.cnn"), "--to", "tvm", "--tune", "--trials", "8",
                                  "--tune-db", str(tmp_path / "tuning"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    tuning = manifest["tuning"]
    assert tuning["left_untuned"] > 0 and tuning["tuned_now"] + tuning["left_untuned"] == tuning["tasks"]
    warning = f"warning: {tuning['left_untuned']} of {tuning['tasks']} tasks got no tuning record within"
    assert warning in result.stderr and f"{4 * tuning['tasks']} trials or more" in result.stderr
    assert manifest["layout"] == "nhwc"  # the tuned CPU layout

    network = cnndsl.load(SPECS / "lenet5.cnn")
    (x,) = example_inputs(network.graph, batch=1)
    with torch.no_grad():
        expected = network.to_torch(seed=0)(x).numpy()
    np.testing.assert_allclose(cnndsl.runtime.load(out)(x.numpy()), expected, rtol=0, atol=1e-4)


def test_an_interrupted_tuning_run_keeps_its_records_and_the_next_run_resumes(tmp_path: Path) -> None:
    spec, database = str(SPECS / "mnist1d.cnn"), tmp_path / "tuning"
    records = database / "database_tuning_record.json"
    process = subprocess.Popen([sys.executable, "-c", "from cnndsl.cli import run; run()", "tune", spec,
                                "--trials", "400", "--tune-db", str(database)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (records.exists() and records.read_text().count("\n") >= 1):  # the first round's records
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no record written in 10 minutes"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the run and its build workers, as a crash would
        process.wait()
    kept = records.read_text().splitlines()
    records.write_text("\n".join(kept) + "\n" + kept[-1][: len(kept[-1]) // 2])  # a line cut mid-write

    result = runner.invoke(main, ["tune", spec, "--trials", "40", "--tune-db", str(database)])
    assert result.exit_code == 0, result.output
    assert f"ignored 1 line(s) of {len(kept) + 1} it cannot load" in result.stderr
    resumed = re.search(r"tuning (\d+) of (\d+) tasks \((\d+) already in", result.stderr)
    assert resumed, result.stderr
    assert int(resumed[3]) >= 1 and int(resumed[1]) + int(resumed[3]) == int(resumed[2])
    assert re.search(r"round 1: \d+/40 trials, \S+ best [\d.]+ [mu]s; network estimate [\d.]+ [mu]s", result.stderr)
    assert "network estimate" in result.stdout and "tuned" in result.stdout

    result = runner.invoke(main, ["tune", spec, "--trials", "40", "--tune-db", str(database)])
    assert result.exit_code == 0 and "already in the tuning database" in result.stdout, result.output

    out = tmp_path / "artifact"
    result = runner.invoke(main, ["compile", spec, "--to", "tvm", "--tune-db", str(database), "-o", str(out)])
    assert result.exit_code == 0 and f"records from {database}" in result.stdout, result.output
    network = cnndsl.load(SPECS / "mnist1d.cnn")
    (x,) = example_inputs(network.graph, batch=1)
    with torch.no_grad():
        expected = network.to_torch(seed=0)(x).numpy()
    np.testing.assert_allclose(cnndsl.runtime.load(out)(x.numpy()), expected, rtol=0, atol=1e-4)
    # the tuned kernels chose their own weight layouts: packed once at compile time and stored so
    params = json.loads((out / "manifest.json").read_text())["params"]
    assert params and all(name.endswith("_prepacked.arg1") or name.endswith("_prepacked.arg2") for name in params)
    assert assert_artifact_runs_without_the_compiler(out, x.numpy(), expected) == (1, 10)
