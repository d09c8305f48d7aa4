"""Every torchvision classification model through `cnndsl import torch`: the table of docs/import.md.

    python -m benchmarks.import_torchvision [NAME ...] > table.md

Each model is built with random weights and imported at 224 x 224 (Inception v3 at 299); the import
verifies itself (strict state_dict load, outputs compared). Prints one markdown row per model: imported
with its parameters, MACs, spec lines, largest relative output difference and seconds, or refused with
the error's code and message.
"""

from __future__ import annotations

import sys
import time
import warnings

import torchvision

from cnndsl.api import import_torch
from cnndsl.diagnostics import SpecError


def row(name: str) -> str:
    size = 299 if name == "inception_v3" else 224
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's notes on default initialisation
        model = torchvision.models.get_model(name).eval()
    try:
        imported = import_torch(model, {"image": (3, size, size)}, name=name)
    except SpecError as exc:
        error = exc.diagnostics[0]
        return f"| {name} | refused | | | | {error.code}: {error.message} |"
    totals = imported.network.report().totals
    seconds = time.perf_counter() - start
    notes = "; ".join(imported.notes)
    return (f"| {name} | exact ({imported.max_difference:.0e}) | {totals.params:,} | {totals.macs / 1e9:.3f} | "
            f"{imported.text.count(chr(10))} | {seconds:.1f} s{'; ' + notes if notes else ''} |")


def main() -> None:
    names = sys.argv[1:] or torchvision.models.list_models(module=torchvision.models)
    print("| model | import | parameters | GMACs | spec lines | notes |")
    print("|---|---|---:|---:|---:|---|")
    for name in names:
        print(row(name), flush=True)


if __name__ == "__main__":
    main()
