"""The human report: a per-layer table (like torchinfo's and Darknet's, with receptive-field
columns), totals, then the diagnostics. Plain text, or Markdown for docs."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..layout import fmt_shape
from . import model as M
from .diagnostics import from_entry, printable, render_diagnostics

COLUMNS = ("Layer", "Op", "Output shape", "Params", "MACs", "RF size", "RF stride", "RF padding")
NUMERIC_COLUMNS = {"Params", "MACs"}  # right-aligned
# `--columns`: what a user may ask for by name, and the header each shows as
COLUMN_NAMES = {"name": "Layer", "op": "Op", "shape": "Output shape", "params": "Params", "macs": "MACs",
                "rf": "RF size", "rf_stride": "RF stride", "rf_padding": "RF padding", "kernel": "Kernel",
                "stride": "Stride", "dilation": "Dilation", "padding": "Padding", "groups": "Groups"}
WINDOW_COLUMNS = ("kernel", "stride", "dilation", "padding", "groups")


def _axes(values: Sequence[int | str]) -> str:
    shown = [str(v) for v in values]
    return shown[0] if len(set(shown)) == 1 else "x".join(shown)


def layer_row(layer: M.Layer) -> tuple[str, ...]:
    return tuple(layer_cells(layer)[column] for column in ("name", "op", "shape", "params", "macs", "rf", "rf_stride",
                                                            "rf_padding"))


def layer_cells(layer: M.Layer) -> dict[str, str]:
    """Every column a layer can show, by `--columns` name."""
    rf, w = layer.rf, layer.window
    op = f"{layer.op} (training)" if layer.training_only else layer.op
    padding = "-" if w is None else _axes(["+".join(map(str, dict.fromkeys(p))) for p in w.padding])
    return {"name": layer.name, "op": op, "shape": fmt_shape(layer.shape), "params": f"{layer.params:,}",
            "macs": f"{layer.macs:,}", "rf": _axes(rf.size) if rf else "-",
            "rf_stride": _axes(rf.stride) if rf else "-", "rf_padding": _axes(rf.padding) if rf else "-",
            "kernel": _axes(w.kernel) if w else "-",
            "stride": _axes(w.stride) if w else "-", "dilation": _axes(w.dilation) if w else "-", "padding": padding,
            "groups": str(w.groups) if w else "-"}


def layer_table(layers: list[M.Layer], columns: tuple[str, ...] | None = None) -> list[str]:
    """The per-layer table, with the default columns or the `--columns` named."""
    if columns is None:
        return format_table(COLUMNS, [layer_row(layer) for layer in layers], right=NUMERIC_COLUMNS)
    headers = tuple(COLUMN_NAMES[column] for column in columns)
    rows = [tuple(layer_cells(layer)[column] for column in columns) for layer in layers]
    return format_table(headers, rows, right=NUMERIC_COLUMNS)


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


def totals_lines(report: M.Report) -> list[str]:
    """The totals of a network without errors (a report with errors has none: the CLI prints its diagnostics),
    in the convention and at the batch the report was made with."""
    t, convention, batch = report.totals, report.convention, report.batch
    assert t.params is not None and t.trainable_params is not None and t.macs is not None
    assert t.param_bytes is not None and t.activation_bytes is not None and t.peak_activation_bytes is not None
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
        f"peak live during inference: {human_size(t.peak_activation_bytes, 'B')}",
        *([training_line(report.training, batch)] if report.training else []),
    ]


def training_line(m: M.TrainingMemory, batch: int) -> str:
    return (f"Training step ({m.optimizer}, batch {batch}): {human_size(m.total_bytes, 'B')} = weights "
            f"{human_size(m.weights_bytes, 'B')} + gradients {human_size(m.gradient_bytes, 'B')} + optimizer state "
            f"{human_size(m.optimizer_bytes, 'B')} + activations kept for backward "
            f"{human_size(m.kept_activation_bytes, 'B')}")


def format_table(headers: tuple[str, ...], rows: list[tuple[str, ...]], right: set[str]) -> list[str]:
    """A fixed-width table: a header, a rule, one line per row. Linear in the rows (a 10,000-layer report
    renders in milliseconds, where a rich.Table took seconds)."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        parts = [c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(cells, widths, headers, strict=True)]
        return ("  " + "   ".join(parts)).rstrip()

    rule = " " + "\u2500" * (sum(widths) + 3 * (len(widths) - 1) + 2)
    return [line(headers), rule, *(line(row) for row in rows)]


def render_text(report: M.Report, color: bool = False, by_op: bool = False,
                columns: tuple[str, ...] | None = None) -> str:
    """The report as `cnndsl check` prints it: the layer table, taps, the breakdown by op, totals, then its
    diagnostics."""
    diagnostics = [from_entry(entry) for entry in report.diagnostics]
    table = layer_table(report.layers, columns)
    taps = ["", "Taps:", *format_table(TAP_COLUMNS, [tap_row(tap) for tap in report.taps], right=set())] \
        if report.taps else []
    ops = ["", "By op:", *format_table(OP_COLUMNS, [op_row(op, report.totals) for op in report.by_op],
                                       right=set(OP_COLUMNS) - {"Op"})] if by_op else []
    out = "\n".join([printable(report.network), "", *table, *taps, *ops, "",
                      *totals_lines(report)])
    if diagnostics:
        out += "\n\n" + render_diagnostics(diagnostics, color)
    return out + "\n"


def render_markdown(report: M.Report) -> str:
    diagnostics = [from_entry(entry) for entry in report.diagnostics]
    lines = [f"### {printable(report.network)}", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---:" if c in NUMERIC_COLUMNS else "---" for c in COLUMNS) + "|"]
    for layer in report.layers:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in layer_row(layer)) + " |")
    if report.taps:
        lines += ["", "Taps:", "", "| " + " | ".join(TAP_COLUMNS) + " |", "|" + "---|" * len(TAP_COLUMNS)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in tap_row(tap)) + " |" for tap in report.taps]
    lines += [""] + [f"- {line}" for line in totals_lines(report)]
    if diagnostics:
        lines += ["", "Diagnostics:", ""]
        lines += [f"- {code_span(printable(d.headline()))}" + (f" (hint: {markdown_text(printable(d.hint))})"
                                                              if d.hint else "") for d in diagnostics]
    return "\n".join(lines) + "\n"


def code_span(text: str) -> str:
    """`text` as a Markdown code span whatever backticks it holds: fenced by one more backtick than its
    longest run, padded with spaces where it starts or ends with one (CommonMark's rule)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return f"{fence}{padded}{fence}"


def markdown_text(text: str) -> str:
    """Prose for Markdown with the characters that would start markup escaped (hints quote code in backticks,
    which stays code: only the rest is escaped)."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(part if part.startswith("`") and part.endswith("`") and len(part) > 1
                   else re.sub(r"([\\*_\[\]<>|#])", r"\\\1", part) for part in parts)
