"""Two networks compared layer by layer (`cnndsl diff a.cnn b.cnn`): what was added, removed or changed,
and the totals' deltas. Layers are matched by name, so a spec and its edit compare as a reviewer reads
them; a block instance whose layers are all new (or all gone) is one entry, not its layers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..graph.model import Graph
from ..layout import fmt_shape
from . import model as M


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entry(_Strict):
    """A layer, or a block instance standing for all its layers, on one side only."""

    name: str
    op: str = Field(description="the layer's op, or the instance's block (`basic`)")
    layers: int
    shape: list[int] = Field(description="its output (the instance's returned tensor)")
    params: int
    macs: int


class Change(_Strict):
    name: str
    fields: dict[str, list[object]] = Field(description="what differs: field -> [before, after] (op, shape, "
                                            "params, macs, rf)")


class Delta(_Strict):
    before: int
    after: int
    delta: int


class Diff(_Strict):
    before: str
    after: str
    convention: str
    added: list[Entry]
    removed: list[Entry]
    changed: list[Change]
    totals: dict[str, Delta] = Field(description="params, trainable_params, macs, param_bytes, activation_bytes, "
                                     "peak_activation_bytes")

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.changed) and all(d.delta == 0 for d in self.totals.values())


COMPARED = ("op", "shape", "params", "macs", "rf")


def diff_reports(before: M.Report, before_graph: Graph, after: M.Report, after_graph: Graph) -> Diff:
    old = {layer.name: layer for layer in before.layers}
    new = {layer.name: layer for layer in after.layers}
    changed = []
    for name in new:
        if name in old:
            fields = {key: [_plain(getattr(old[name], key)), _plain(getattr(new[name], key))] for key in COMPARED
                      if getattr(old[name], key) != getattr(new[name], key)}
            if fields:
                changed.append(Change(name=name, fields=fields))
    totals = {key: Delta(before=getattr(before.totals, key), after=getattr(after.totals, key),
                         delta=getattr(after.totals, key) - getattr(before.totals, key))
              for key in ("params", "trainable_params", "macs", "param_bytes", "activation_bytes",
                          "peak_activation_bytes")}
    return Diff(before=before.network, after=after.network, convention=after.convention,
                added=_entries([new[n] for n in new if n not in old], after_graph),
                removed=_entries([old[n] for n in old if n not in new], before_graph),
                changed=changed, totals=totals)


def _plain(value: object) -> object:
    return value.model_dump() if isinstance(value, BaseModel) else value


def _entries(layers: list[M.Layer], graph: Graph) -> list[Entry]:
    """The layers on one side only, each block instance whose layers are all among them as one entry."""
    names = {layer.name for layer in layers}
    members: dict[str, list[str]] = {}
    for node in graph.dag.nodes:
        for unit in graph.enclosing(node):
            members.setdefault(unit.name, []).append(node)
    whole = sorted((name for name, nodes in members.items() if all(node in names for node in nodes)), key=len)
    covered: dict[str, str] = {}  # layer -> the outermost wholly new instance holding it
    for name in whole:
        for node in members[name]:
            covered.setdefault(node, name)
    by_name = {layer.name: layer for layer in layers}
    entries, done = [], set()
    for layer in layers:
        holder = covered.get(layer.name)
        if holder is None:
            entries.append(Entry(name=layer.name, op=layer.op, layers=1, shape=layer.shape, params=layer.params,
                                 macs=layer.macs))
        elif holder not in done:
            done.add(holder)
            inside = [by_name[node] for node in members[holder]]
            returned = by_name.get(graph.instances[holder].output, inside[-1])
            entries.append(Entry(name=holder, op=graph.instances[holder].kind, layers=len(inside), shape=returned.shape,
                                 params=sum(m.params for m in inside), macs=sum(m.macs for m in inside)))
    return entries


def render_diff(result: Diff) -> str:
    """The diff for people: + added, - removed, ~ changed, then the totals."""
    if result.same:
        return (f"{result.before} and {result.after}: no difference in layers, shapes, parameters, MACs or "
                "receptive fields\n")
    lines = [f"{result.before} -> {result.after} (MACs: {result.convention})"]
    for sign, title, entries in (("+", "added", result.added), ("-", "removed", result.removed)):
        if entries:
            params, macs = sum(e.params for e in entries), sum(e.macs for e in entries)
            lines += ["", f"{title}: {len(entries)} ({sum(e.layers for e in entries)} layers, {sign}{params:,} params, "
                          f"{sign}{macs:,} MACs)"]
            width = max(len(e.name) for e in entries)
            lines += [f"  {sign} {e.name.ljust(width)}  {e.op}{f' ({e.layers} layers)' if e.layers > 1 else ''}  "
                      f"{fmt_shape(e.shape)}  {e.params:,} params  {e.macs:,} MACs" for e in entries]
    if result.changed:
        lines += ["", f"changed: {len(result.changed)}"]
        width = max(len(c.name) for c in result.changed)
        for change in result.changed:
            parts = [f"{key} {_show(before)} -> {_show(after)}" for key, (before, after) in change.fields.items()]
            lines.append(f"  ~ {change.name.ljust(width)}  " + "; ".join(parts))
    lines += ["", "totals:"]
    lines += [f"  {key}: {d.before:,} -> {d.after:,} ({d.delta:+,})" for key, d in result.totals.items() if d.delta]
    return "\n".join(lines) + "\n"


def _show(value: object) -> str:
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return fmt_shape(tuple(value))
    if isinstance(value, dict):  # a receptive field: size / stride / padding
        return "/".join("x".join(str(v) for v in dict.fromkeys(map(str, value[key]))) for key in ("size", "stride",
                                                                                                  "padding"))
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
