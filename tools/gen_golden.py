"""Regenerate tests/golden/: the text and JSON reports of every bundled spec (`make golden`).
Review the diff: a change here is a change users see."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnndsl.api import load  # noqa: E402
from cnndsl.report.text import render_text  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"


def golden_reports(spec: Path) -> dict[str, str]:
    """The reports checked in for one spec, keyed by file name. Paths are shown relative to the repo."""
    network = load(spec.relative_to(ROOT))
    report = network.report()
    text = render_text(report, color=False)
    return {f"{spec.stem}.txt": text, f"{spec.stem}.json": report.model_dump_json(indent=2) + "\n"}


def main() -> None:
    import os

    os.chdir(ROOT)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for spec in sorted((ROOT / "specs").glob("*.cnn")):
        for name, content in golden_reports(spec).items():
            (GOLDEN / name).write_text(content)
            print(f"wrote tests/golden/{name}")


if __name__ == "__main__":
    main()
