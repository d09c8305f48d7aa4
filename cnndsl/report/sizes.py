"""`cnndsl sizes` output: the sizes an input accepts, as text and as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..analysis.sizes import Progression, Sizes, Verdict, axes_in_words
from ..layout import fmt_shape


def spans(sizes: Sequence[int]) -> str:
    """`40, 48..63, 80` for sorted sizes."""
    parts, start = [], None
    for i, size in enumerate(sizes):
        start = size if start is None else start
        if i + 1 == len(sizes) or sizes[i + 1] != size + 1:
            parts.append(str(start) if start == size else f"{start}..{size}")
            start = None
    return ", ".join(parts)


def listing(sizes: Sequence[int], form: list[Progression] | None, limit: int = 12) -> str:
    """The sizes as their closed form (with the first few), else as spans."""
    if not sizes:
        return "none"
    count = f"{len(sizes)} size{'s' * (len(sizes) != 1)}"
    if form:
        shown = ", ".join(map(str, sizes[:6])) + (", ..." if len(sizes) > 6 else "")
        return f"{'; '.join(p.describe() for p in form)}: {shown} ({count})"
    text = spans(sizes)
    if text.count(",") >= limit:
        text = ", ".join(text.split(", ")[:limit]) + ", ..."
    return f"{text} ({count}; no closed form in this range)"


def verdict_line(verdict: Verdict) -> str:
    if verdict.fits:
        return f"{verdict.size}: fits" + (f", not aligned ({verdict.misaligned})" if verdict.misaligned else
                                          ", aligned")
    where = f" at `{verdict.layer}`" if verdict.layer else ""
    return f"{verdict.size}: does not fit: {verdict.code}{where}: {verdict.message}"


def render_text(network: str, result: Sizes) -> str:
    axes = axes_in_words(result.axis_names)
    lines = [f"{network}: input `{result.input}` ({fmt_shape(result.shape)}), sizes of {axes}, "
             f"{result.low} to {result.high}",
             f"  fit (no W100, merges and crops line up, outputs non-empty): "
             f"{listing(result.fitting, result.fitting_form)}",
             f"  aligned (fit, and every strided layer's output x stride = its input): "
             f"{listing(result.aligned, result.aligned_form)}"]
    if result.fitting and not result.aligned:
        example = next(v for v in result.verdicts if v.fits)
        lines.append(f"    (e.g. {example.size}: {example.misaligned})")
    if result.period > 1:
        lines.append(f"  period {result.period}: the least common multiple of the layers' effective strides")
    declared = result.declared_verdict
    shown = [v for v in (declared, *result.at) if v is not None]
    shown = [v for i, v in enumerate(shown) if v.size not in {u.size for u in shown[:i]}]
    if shown:
        lines.append("")
        lines += [f"  {verdict_line(v)}" + (" (declared)" if v is declared else "") for v in shown]
    if declared is not None and not declared.fits:
        below = max((s for s in result.fitting if s < declared.size), default=None)
        above = min((s for s in result.fitting if s > declared.size), default=None)
        nearest = " and ".join(str(s) for s in (below, above) if s is not None) or "none in the range"
        lines.append(f"  nearest sizes in the range that fit: {nearest}")
    if result.failures:
        lines += ["", "  sizes that do not fit, by the first rule they break:"]
        for failure in result.failures[:8]:
            where = f" at `{failure.layer}`" if failure.layer else ""
            lines.append(f"    {failure.code}{where}: {failure.count} size{'s' * (failure.count != 1)}, e.g. "
                         f"{failure.example.size}: {failure.example.message}")
        if len(result.failures) > 8:
            lines.append(f"    ... and {len(result.failures) - 8} more rule(s) and layer(s)")
    if result.reexpanded:
        lines.append(f"\n  {result.reexpanded} size(s) judged by expanding the spec again (its arguments read "
                     "tensor shapes that change with the input)")
    return "\n".join(lines)


def to_json(network: str, result: Sizes) -> dict[str, Any]:
    """One sweep (`cnndsl sizes --json` prints {"network": ..., "sweeps": [these]})."""
    def form(progressions: list[Progression] | None) -> list[dict[str, int]] | None:
        return None if progressions is None else [{"start": p.start, "step": p.step} for p in progressions]

    def verdict(v: Verdict) -> dict[str, Any]:
        return {"size": v.size, "fits": v.fits, "aligned": v.aligned, "code": v.code or None,
                "layer": v.layer or None, "message": v.message or None, "misaligned": v.misaligned or None}

    declared = result.declared_verdict
    return {
        "input": result.input, "shape": list(result.shape), "axes": result.axis_names,
        "range": [result.low, result.high], "period": result.period,
        "fit": {"sizes": result.fitting, "closed_form": form(result.fitting_form)},
        "aligned": {"sizes": result.aligned, "closed_form": form(result.aligned_form)},
        "declared": None if declared is None else verdict(declared),
        "at": [verdict(v) for v in result.at],
        "failures": [{"code": f.code, "layer": f.layer or None, "count": f.count, "example": verdict(f.example)}
                     for f in result.failures],
        "reexpanded": result.reexpanded,
    }
