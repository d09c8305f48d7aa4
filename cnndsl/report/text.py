"""The human report: a per-layer table (like torchinfo's and Darknet's, with receptive-field
columns), totals, then the diagnostics. Plain text through rich, or Markdown for docs."""

from __future__ import annotations

import io

from ..diagnostics import Diagnostic
from . import model as M
from .diagnostics import render_diagnostics

COLUMNS = ("Layer", "Op", "Output shape", "Params", "MACs", "RF size", "RF stride", "RF padding")


def _axes(values: list[int] | list[int | str]) -> str:
    shown = [str(v) for v in values]
    return shown[0] if len(set(shown)) == 1 else "x".join(shown)


def layer_row(layer: M.Layer) -> tuple[str, ...]:
    rf = layer.rf
    return (layer.name, layer.op, " x ".join(map(str, layer.shape)), f"{layer.params:,}", f"{layer.macs:,}",
            _axes(rf.size) if rf else "-", _axes(rf.stride) if rf else "-", _axes(rf.padding) if rf else "-")


def human_size(n: int, unit: str = "") -> str:
    for factor, prefix in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{n} {unit}".rstrip()


def totals_lines(report: M.Report, convention: str, batch: int, peak_bytes: int) -> list[str]:
    t = report.totals
    macs = f"{t.macs:,} ({human_size(t.macs)})"
    if convention == "darknet":
        macs += f" = {2 * t.macs / 1e9:.3f} BFLOPs"
    inputs = ", ".join(f"{k}: {' x '.join(map(str, v))}" for k, v in report.inputs.items())
    outputs = ", ".join(f"{k}: {' x '.join(map(str, v))}" for k, v in report.outputs.items())
    return [
        f"Inputs: {inputs}    Outputs: {outputs}",
        f"Params: {t.params:,} (trainable {t.trainable_params:,}, non-trainable {t.params - t.trainable_params:,})",
        f"MACs ({convention}, batch {batch}): {macs}",
        f"Parameter memory (fp32, incl. buffers): {human_size(t.param_bytes, 'B')}",
        f"Activation memory (fp32, all layer outputs, batch {batch}): {human_size(t.activation_bytes, 'B')}; "
        f"peak live during inference: {human_size(peak_bytes, 'B')}",
    ]


def render_text(report: M.Report, diagnostics: list[Diagnostic], convention: str, batch: int, peak_bytes: int,
                color: bool | None = None, width: int | None = None) -> str:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report.network}", box=box.SIMPLE_HEAD, title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in ("Params", "MACs") else "left", no_wrap=True)
    for layer in report.layers:
        table.add_row(*layer_row(layer))
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 200, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False)
    console.print(table)
    table_text = "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()).strip("\n")
    out = table_text + "\n\n" + "\n".join(totals_lines(report, convention, batch, peak_bytes))
    if diagnostics:
        out += "\n\n" + render_diagnostics(diagnostics)
    return out + "\n"


def render_markdown(report: M.Report, diagnostics: list[Diagnostic], convention: str, batch: int,
                    peak_bytes: int) -> str:
    lines = [f"### {report.network}", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---:" if c in ("Params", "MACs") else "---" for c in COLUMNS) + "|"]
    for layer in report.layers:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in layer_row(layer)) + " |")
    lines += [""] + [f"- {line}" for line in totals_lines(report, convention, batch, peak_bytes)]
    if diagnostics:
        lines += ["", "Diagnostics:", ""]
        lines += [f"- `{d.headline()}`" + (f" (hint: {d.hint})" if d.hint else "") for d in diagnostics]
    return "\n".join(lines) + "\n"
