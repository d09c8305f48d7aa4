"""Helpers: write a spec to a temporary file and check it through the public API."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

import cnndsl
from cnndsl.diagnostics import Diagnostic, SpecError

settings.register_profile("default", max_examples=120)
settings.register_profile("thorough", max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


class SpecFiles:
    def __init__(self, root: Path):
        self.root = root

    def write(self, text: str, name: str = "model.cnn") -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def load(self, text: str, name: str = "model.cnn", **kwargs: object) -> cnndsl.Network:
        return cnndsl.load(self.write(text, name), **kwargs)  # type: ignore[arg-type]

    def errors(self, text: str, name: str = "model.cnn") -> list[Diagnostic]:
        with pytest.raises(SpecError) as info:
            self.load(text, name)
        return [d for d in info.value.diagnostics if d.is_error]


@pytest.fixture
def specs(tmp_path: Path) -> SpecFiles:
    return SpecFiles(tmp_path)


def layer(network: cnndsl.Network, name: str, convention: str = "torchvision"):  # type: ignore[no-untyped-def]
    for entry in network.report(convention).layers:
        if entry.name == name:
            return entry
    raise KeyError(name)
