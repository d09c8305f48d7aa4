"""The human report: a per-layer table (like torchinfo's and Darknet's, with receptive-field
columns), totals, then the diagnostics. Plain text, or Markdown for docs."""

from __future__ import annotations

from ..diagnostics import Diagnostic
from ..layout import fmt_shape
from . import model as M
from .diagnostics import printable, render_diagnostics

COLUMNS = ("Layer", "Op", "Output shape", "Params", "MACs", "RF size", "RF stride", "RF padding")
NUMERIC_COLUMNS = {"Params", "MACs"}  # right-aligned


def _axes(values: list[int] | list[int | str]) -> str:
    shown = [str(v) for v in values]
    return shown[0] if len(set(shown)) == 1 else "x".join(shown)


def layer_row(layer: M.Layer) -> tuple[str, ...]:
    rf = layer.rf
    op = f"{layer.op} (training)" if layer.training_only else layer.op
    return (layer.name, op, fmt_shape(layer.shape), f"{layer.params:,}", f"{layer.macs:,}",
            _axes(rf.size) if rf else "-", _axes(rf.stride) if rf else "-", _axes(rf.padding) if rf else "-")


TAP_COLUMNS = ("Tap", "Layer", "Shape", "Channels", "Stride", "RF size", "RF padding")


def tap_row(tap: M.Tap) -> tuple[str, ...]:
    rf = tap.rf
    return (printable(tap.name), printable(tap.layer), fmt_shape(tap.shape), str(tap.channels),
            _axes(rf.stride) if rf else "-", _axes(rf.size) if rf else "-", _axes(rf.padding) if rf else "-")


OP_COLUMNS = ("Op", "Layers", "Params", "MACs", "Share of MACs")


def op_row(op: M.OpSummary, totals: M.Totals) -> tuple[str, ...]:
    share = f"{100 * op.macs / totals.macs:.1f}%" if totals.macs else "-"
    return (op.op, str(op.layers), f"{op.params:,}", f"{op.macs:,}", share)


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
    inputs = ", ".join(f"{k}: {fmt_shape(v)}" for k, v in report.inputs.items())
    outputs = ", ".join(f"{k}{' (training)' if k in report.training_outputs else ''}: {fmt_shape(v)}"
                        for k, v in report.outputs.items())
    return [
        f"Inputs: {inputs}    Outputs: {outputs}",
        f"Params: {t.params:,} (trainable {t.trainable_params:,}, non-trainable {t.params - t.trainable_params:,})",
        f"MACs ({convention}, batch {batch}{', inference' if report.training_outputs else ''}): {macs}",
        f"Parameter memory (fp32, incl. buffers): {human_size(t.param_bytes, 'B')}",
        f"Activation memory (fp32, all layer outputs, batch {batch}): {human_size(t.activation_bytes, 'B')}; "
        f"peak live during inference: {human_size(peak_bytes, 'B')}",
    ]


def format_table(headers: tuple[str, ...], rows: list[tuple[str, ...]], right: set[str]) -> list[str]:
    """A fixed-width table: a header, a rule, one line per row. Linear in the rows (a 10,000-layer report
    renders in milliseconds, where a rich.Table took seconds)."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        parts = [c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(cells, widths, headers, strict=True)]
        return ("  " + "   ".join(parts)).rstrip()

    rule = " " + "\u2500" * (sum(widths) + 3 * (len(widths) - 1) + 2)
    return [line(headers), rule, *(line(row) for row in rows)]


def render_text(report: M.Report, diagnostics: list[Diagnostic], convention: str, batch: int, peak_bytes: int,
                color: bool = False, by_op: bool = False) -> str:
    table = format_table(COLUMNS, [layer_row(layer) for layer in report.layers], right=NUMERIC_COLUMNS)
    taps = ["", "Taps:", *format_table(TAP_COLUMNS, [tap_row(tap) for tap in report.taps], right=set())] \
        if report.taps else []
    ops = ["", "By op:", *format_table(OP_COLUMNS, [op_row(op, report.totals) for op in report.by_op],
                                       right=set(OP_COLUMNS) - {"Op"})] if by_op else []
    out = "\n".join([printable(report.network), "", *table, *taps, *ops, "",
                      *totals_lines(report, convention, batch, peak_bytes)])
    if diagnostics:
        out += "\n\n" + render_diagnostics(diagnostics, color)
    return out + "\n"


def render_markdown(report: M.Report, diagnostics: list[Diagnostic], convention: str, batch: int,
                    peak_bytes: int) -> str:
    lines = [f"### {printable(report.network)}", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---:" if c in NUMERIC_COLUMNS else "---" for c in COLUMNS) + "|"]
    for layer in report.layers:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in layer_row(layer)) + " |")
    if report.taps:
        lines += ["", "Taps:", "", "| " + " | ".join(TAP_COLUMNS) + " |", "|" + "---|" * len(TAP_COLUMNS)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in tap_row(tap)) + " |" for tap in report.taps]
    lines += [""] + [f"- {line}" for line in totals_lines(report, convention, batch, peak_bytes)]
    if diagnostics:
        lines += ["", "Diagnostics:", ""]
        lines += [f"- `{printable(d.headline())}`" + (f" (hint: {printable(d.hint)})" if d.hint else "")
                  for d in diagnostics]
    return "\n".join(lines) + "\n"
