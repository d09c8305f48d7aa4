"""`cnndsl draw`: every bundled spec as Graphviz DOT (a node per row, a cluster per block instance, edges
with shapes), rendered to SVG and PNG by Graphviz where it is installed, and a clear message where not."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import cnndsl
from cnndsl.cli import main
from cnndsl.report.draw import to_dot
from tests.conftest import ROOT, SPECS

GRAPHVIZ = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


@pytest.mark.parametrize("spec", sorted(path.stem for path in SPECS.glob("*.cnn")))
def test_every_bundled_spec_draws_as_dot(spec: str) -> None:
    network = cnndsl.load(SPECS / f"{spec}.cnn")
    report = network.report()
    dot = to_dot(network.graph, report)
    nodes = re.findall(r'^\s*"([^"]+)" \[(?:shape=ellipse, )?(?:fillcolor|label)', dot, flags=re.MULTILINE)
    assert set(nodes) == {layer.name for layer in report.layers} | set(network.graph.inputs.values())
    clusters = set(re.findall(r'subgraph "cluster_([^"]+)"', dot))
    assert clusters == {name for name in network.graph.instances
                        if any(node.startswith(name + ".") for node in network.graph.dag)}
    edges = re.findall(r'^\s*"([^"]+)" -> "([^"]+)"', dot, flags=re.MULTILINE)
    assert len(edges) == len({(source, layer.name) for layer in report.layers for source in layer.inputs})


def test_depth_draws_block_instances_as_one_node() -> None:
    network = cnndsl.load(SPECS / "resnet18.cnn")
    dot = to_dot(network.graph, network.report(depth=1))
    assert '"layer2" [label="layer2\\nbasic x 2 (16 layers)\\n128 x 28 x 28  525,568 params\\nRF 99"' in dot
    assert "cluster_" not in dot and '"layer1" -> "layer2" [label="64 x 56 x 56"];' in dot


@GRAPHVIZ
@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_resnet18_and_unet_render(tmp_path: Path, fmt: str) -> None:
    for spec in ("resnet18", "unet"):
        out = tmp_path / f"{spec}.{fmt}"
        result = CliRunner().invoke(main, ["draw", str(SPECS / f"{spec}.cnn"), "-o", str(out)])
        assert result.exit_code == 0, result.output
        data = out.read_bytes()
        assert data.startswith(b"\x89PNG") if fmt == "png" else b"<svg" in data
    if fmt == "svg":  # every layer and the input a node; the 4 stages, 8 blocks and 3 projections boxes
        svg = (tmp_path / "resnet18.svg").read_text()
        layers = len(cnndsl.load(SPECS / "resnet18.cnn").report().layers)
        assert svg.count('class="node"') == layers + 1 and svg.count('class="cluster"') == 4 + 8 + 3


@GRAPHVIZ
@pytest.mark.slow
@pytest.mark.parametrize("spec", sorted(path.stem for path in SPECS.glob("*.cnn")))
def test_every_bundled_spec_renders_to_svg(spec: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["draw", str(SPECS / f"{spec}.cnn"), "-o", str(tmp_path / "net.svg")])
    assert result.exit_code == 0, result.output


def test_without_graphviz_the_message_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = CliRunner().invoke(main, ["draw", str(SPECS / "lenet5.cnn"), "-o", str(tmp_path / "lenet5.svg")])
    assert result.exit_code == 2 and "apt install graphviz" in result.output and "lenet5.dot" in result.output
    result = CliRunner().invoke(main, ["draw", str(SPECS / "lenet5.cnn"), "-o", str(tmp_path / "lenet5.dot")])
    assert result.exit_code == 0 and (tmp_path / "lenet5.dot").read_text().startswith("digraph network {")
    result = CliRunner().invoke(main, ["draw", str(SPECS / "lenet5.cnn"), "-o", str(tmp_path / "lenet5.jpg")])
    assert result.exit_code == 2 and "name it .svg, .png, .pdf or .dot" in result.output
    assert ROOT.exists()
