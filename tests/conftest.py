"""Helpers: write a spec to a temporary file and check it through the public API."""

from __future__ import annotations

import os
import subprocess
import sys
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


def assert_artifact_runs_without_the_compiler(artifact: Path, x: object, expected: object) -> tuple[int, ...]:
    """Run `artifact` on `x` in a fresh Python where importing any of cnndsl but its runtime fails, and
    compare with `expected` (numpy arrays); returns the output's shape."""
    import numpy as np

    np.save(artifact / "x.test.npy", x)  # type: ignore[arg-type]
    np.save(artifact / "expected.test.npy", expected)  # type: ignore[arg-type]
    script = (
        "import sys\n"
        "class NoCompiler:\n"
        "    allowed = {'cnndsl', 'cnndsl.runtime'}\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('cnndsl') and name not in self.allowed:\n"
        "            raise ImportError(f'{name} must not be needed to run an artifact')\n"
        "sys.meta_path.insert(0, NoCompiler())\n"
        "import numpy as np, cnndsl.runtime\n"
        f"model = cnndsl.runtime.load({str(artifact)!r})\n"
        f"got = model(np.load({str(artifact / 'x.test.npy')!r}))\n"
        f"np.testing.assert_allclose(got, np.load({str(artifact / 'expected.test.npy')!r}), rtol=0, atol=1e-4)\n"
        "assert not any(m.startswith(('cnndsl.graph', 'cnndsl.backends', 'cnndsl.syntax', 'cnndsl.api'))"
        " for m in sys.modules)\n"
        "print('ok', *got.shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    words = done.stdout.split()
    assert words[0] == "ok", done.stdout
    return tuple(int(w) for w in words[1:])


# Longest first: `make test` spreads tests over workers in collection order, and the few long ones (fuzzing,
# tuning, whole-network TVM compiles) left to the end of the collection would run alone on one worker
# while the other idles. Moved to the front, the many short tests fill in around them.
HEAVY_FIRST = ("fuzz", "slow", "tvm")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def weight(item: pytest.Item) -> int:
        return next((rank for rank, mark in enumerate(HEAVY_FIRST) if item.get_closest_marker(mark)),
                    len(HEAVY_FIRST))

    items.sort(key=weight)  # stable: the order within each group is the files' own
