"""A tiny run of examples/mnist1d/train.py: both specs compile, train, and the results are written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.conftest import ROOT


def test_mnist1d_training_example_runs_end_to_end(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("mnist1d_train", ROOT / "examples" / "mnist1d" / "train.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    results = script.main(["--steps", "60", "--eval-every", "20", "--out", str(tmp_path)])

    assert {name: r["params"] for name, r in results.items()} == {"convnet": 2_050, "fully connected": 150_185}
    saved = json.loads((tmp_path / "results.json").read_text())
    for result in saved["results"].values():
        assert result["curve"]["step"] == [20, 40, 60]
        assert all(0.0 <= a <= 1.0 for a in result["curve"]["test_accuracy"])
        assert result["curve"]["loss"][-1] < 2.5  # ln(10) = 2.30 at chance: training moves
    assert (tmp_path / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
