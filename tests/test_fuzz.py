"""The CI-sized fuzz run (tools/fuzz.py; `make fuzz` is the long one): generated and mutated specs through
`cnndsl check` and the PyTorch lowering, with no crash and no input past its deadline."""

from __future__ import annotations

import pytest

from tools.fuzz import FINDINGS, fuzz

pytestmark = pytest.mark.fuzz  # two minutes of fuzzing: not in `make test-fast`

CI_INPUTS = 16_000  # about 2 minutes on two cores


def test_fuzzing_finds_no_crash_and_no_hang() -> None:
    summary = fuzz(CI_INPUTS, seed=20261125, workers=2, deadline=20.0)
    found = {kind: summary["outcomes"].get(kind, 0) for kind in FINDINGS}
    assert sum(found.values()) == 0, summary["findings"][:10]
    assert summary["outcomes"].get("clean", 0) > CI_INPUTS // 20  # the generator reaches networks that check
    assert summary["outcomes"].get("spec-error", 0) > CI_INPUTS // 2
