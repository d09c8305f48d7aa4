"""Golden reports of the bundled specs. After a deliberate change: `make golden`, review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, SPECS
from tools.gen_golden import GOLDEN, golden_reports


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.cnn")), ids=lambda p: p.stem)
def test_report_matches_golden(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for name, content in golden_reports(spec).items():
        assert (GOLDEN / name).read_text() == content, f"{name} changed: run `make golden` and review the diff"
    assert os.getcwd() == str(ROOT)
