"""`cnndsl sizes`: the input sizes a network accepts, proven against `check` run at every size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import cnndsl
from cnndsl.analysis.sizes import Progression
from cnndsl.cli import main
from cnndsl.diagnostics import SpecError, UsageError
from tests.conftest import ROOT, SPECS

runner = CliRunner()


def checked_verdict(spec: Path, name: str, shape: tuple[int, ...]) -> tuple[bool, set[str]]:
    """What `check` says at this input shape: fits (no error, no W100), and the codes of the size rules
    it reports (errors and W100)."""
    try:
        network = cnndsl.load(spec, inputs={name: shape})
    except SpecError as exc:
        return False, {d.code for d in exc.diagnostics if d.is_error}
    codes = {d.code for d in network.diagnostics if d.code == "W100"}
    return not codes, codes


def assert_equals_brute_force(spec: Path, low: int, high: int, axes: str | None = None) -> None:
    result = cnndsl.sizes(spec, low, high, axes)
    assert [v.size for v in result.verdicts] == list(range(low, high + 1))
    for verdict in result.verdicts:
        shape = list(result.shape)
        for axis in result.axes:
            shape[1 + axis] = verdict.size
        fits, codes = checked_verdict(spec, result.input, tuple(shape))
        assert verdict.fits == fits, (spec.name, verdict, codes)
        if not fits:
            assert verdict.code in codes, (spec.name, verdict, codes)  # the rule named is one check reports
    if result.fitting_form:  # the closed form holds exactly the sizes that fit
        members = sorted({s for p in result.fitting_form for s in range(p.start, high + 1, p.step)})
        assert members == result.fitting


@pytest.mark.parametrize(("spec", "low", "high", "axes"), [
    ("unet", 170, 260, None), ("mnist1d", 1, 90, None), ("resnet18", 20, 80, None), ("yolov1", 56, 100, None),
    ("unet", 560, 590, "W"),
])
def test_sizes_equal_check_at_every_size(spec: str, low: int, high: int, axes: str | None) -> None:
    assert_equals_brute_force(SPECS / f"{spec}.cnn", low, high, axes)


@pytest.mark.slow
@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.cnn")), ids=lambda p: p.stem)
def test_sizes_equal_check_at_every_size_for_every_bundled_spec(spec: Path) -> None:
    network = cnndsl.load(spec)
    inputs = [network.graph.node(node).shape for node in network.graph.inputs.values()]
    if not inputs or len(inputs[0] or ()) < 2:
        with pytest.raises(UsageError):
            cnndsl.sizes(spec, 32, 40)
        return
    assert_equals_brute_force(spec, 32, 160)


@pytest.mark.parametrize(("spec", "fit", "aligned"), [
    ("unet", [Progression(188, 16)], [Progression(188, 16)]),  # the paper's 572 = 188 + 16 x 24
    ("resnet18", [Progression(32, 1)], [Progression(32, 32)]),  # padding absorbs odd sizes; exact halving: 32k
    ("vgg16", [Progression(32, 32)], [Progression(32, 32)]),  # 2x2 pooling: even sizes five times
    ("mnist1d", [Progression(39, 8)], []),  # unpadded stride-2 convolutions never halve exactly
])
def test_closed_forms_of_known_networks(spec: str, fit: list[Progression], aligned: list[Progression]) -> None:
    result = cnndsl.sizes(SPECS / f"{spec}.cnn")
    assert (result.fitting_form, result.aligned_form) == (fit, aligned)


def test_unet_572_fits_and_570_does_not_and_the_reason_is_named() -> None:
    result = cnndsl.sizes(SPECS / "unet.cnn", at=(570, 572))
    fits_572, fails_570 = result.at[1], result.at[0]
    assert fits_572.fits and fits_572.aligned
    assert (fails_570.fits, fails_570.code, fails_570.layer) == (False, "W100", "maxpool2")  # 570-4 = 566 -> 283 -> 279
    code, out = invoke("sizes", str(SPECS / "unet.cnn"), "--at", "570")
    assert code == 1  # a size asked for does not fit
    assert "570: does not fit: W100 at `maxpool2`" in out and "188 + 16k (k >= 0)" in out
    assert "572: fits, aligned (declared)" in out


def test_a_spec_declared_at_a_size_that_does_not_fit_is_swept_and_check_names_the_nearest(tmp_path: Path) -> None:
    spec = tmp_path / "unet570.cnn"
    spec.write_text((SPECS / "unet.cnn").read_text().replace("1 x 572 x 572", "1 x 570 x 570"))
    result = cnndsl.sizes(spec, 540, 600)
    assert result.fitting == [540, 556, 572, 588] and result.period == 16
    network = cnndsl.load(spec)
    hint = next(d for d in network.diagnostics if d.code == "I104")
    assert "the nearest sizes of H and W together that fit are 556 and 572" in hint.message
    assert hint.location is not None and hint.location.line == 20
    assert "W100 at `maxpool2`" in (hint.hint or "")
    assert not any(d.code == "I104" for d in cnndsl.load(SPECS / "unet.cnn").diagnostics)


def test_a_mismatch_no_input_size_mends_gets_no_size_hint(tmp_path: Path) -> None:
    spec = tmp_path / "m.cnn"
    spec.write_text("input x: 3 x 32 x 32\na = x -> conv(8, 3, padding=1)\nb = x -> conv(8, 3)\n"
                    "output y = [a, b] -> add\n")
    with pytest.raises(SpecError) as caught:
        cnndsl.load(spec)
    assert {d.code for d in caught.value.diagnostics} >= {"E302"}
    assert not any(d.code == "I104" for d in caught.value.diagnostics)  # no size within reach fits
    assert cnndsl.sizes(spec, 8, 64).fitting == []


def test_a_spec_whose_layers_read_shapes_is_expanded_again_where_they_change(tmp_path: Path) -> None:
    """Here the channels follow the input's width: each size is a different network."""
    spec = tmp_path / "reads.cnn"
    spec.write_text("input x: 3 x 32 x 32\n"
                    "h = x -> conv(size(x, 2), 3, stride=2)\n"
                    "output y = h -> conv(channels(h), 3, padding=1)\n")
    result = cnndsl.sizes(spec, 28, 36)
    assert result.reexpanded == 8  # every size but the declared 32
    assert_equals_brute_force(spec, 28, 36)
    plain = cnndsl.sizes(SPECS / "mobilenet_v2.cnn", 200, 230)  # channels(x) reads channels only: no re-expansion
    assert plain.reexpanded == 0


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(main, list(args), input=stdin)
    return result.exit_code, result.output


def test_sizes_json_and_text() -> None:
    code, out = invoke("sizes", str(SPECS / "resnet18.cnn"), "--json", "--range", "32:100")
    assert code == 0
    whole = json.loads(out)
    assert whole["network"] == "resnet18" and len(whole["sweeps"]) == 1
    (data,) = whole["sweeps"]
    assert data["aligned"]["closed_form"] == [{"start": 32, "step": 32}] and data["aligned"]["sizes"] == [32, 64, 96]
    assert data["fit"]["closed_form"] == [{"start": 32, "step": 1}] and data["period"] == 32
    assert data["declared"] == {"size": 224, "fits": True, "aligned": True, "code": None, "layer": None,
                                "message": None, "misaligned": None}  # judged though outside the range
    code, out = invoke("sizes", str(SPECS / "resnet18.cnn"))
    assert "aligned (fit, and every strided layer's output x stride = its input): multiples of 32 from 32" in out
    assert "224: fits, aligned (declared)" in out


def test_sizes_reads_a_spec_from_standard_input() -> None:
    code, out = invoke("sizes", "-", "--range", "30:50", stdin=(SPECS / "mnist1d.cnn").read_text())
    assert code == 0 and "31 + 8k (k >= 0): 31, 39, 47" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--range", "2048:32"], "1 <= low <= high"),
    (["--range", "32-64"], "--range takes LOW:HIGH"),
    (["--range", "1:100000000"], "at most 65,536"),
    (["--axis", "Q"], "its spatial axes are H, W"),
    (["--axis", "HH"], "does not name axes"),
    (["--of", "nope"], "no input named 'nope'"),
])
def test_bad_sizes_arguments_are_usage_errors(args: list[str], message: str) -> None:
    code, out = invoke("sizes", str(SPECS / "resnet18.cnn"), *args)
    assert code == 2 and message in out, out


def test_a_spec_with_other_errors_is_reported_not_swept(tmp_path: Path) -> None:
    spec = tmp_path / "bad.cnn"
    spec.write_text("input x: 3 x 32 x 32\noutput y = x -> conv(8, 3, strid=2)\n")
    code, out = invoke("sizes", str(spec))
    assert code == 1 and "strid" in out


def test_the_readme_shows_the_sizes_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "cnndsl sizes specs/unet.cnn" in readme


def test_sweeps_past_the_work_limits_are_refused_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "reads.cnn"
    spec.write_text("input x: 3 x 32 x 32\noutput y = x -> conv(size(x, 2), 3)\n")
    monkeypatch.setattr("cnndsl.api.MAX_REEXPANSIONS", 3)
    with pytest.raises(UsageError, match="at most 3 sizes of such a spec"):
        cnndsl.sizes(spec, 20, 40)
    monkeypatch.setattr("cnndsl.api.MAX_LAYER_SIZES", 1000)
    with pytest.raises(UsageError, match="more than one run judges"):
        cnndsl.sizes(SPECS / "resnet18.cnn", 32, 2048)


def test_a_non_square_input_is_swept_one_axis_at_a_time(tmp_path: Path) -> None:
    spec = tmp_path / "wide.cnn"
    spec.write_text("input x: 3 x 64 x 97\noutput y = x -> conv(8, 3, stride=2) -> relu\n")
    with pytest.raises(UsageError, match="not square: name the axes"):
        cnndsl.sizes(spec, 32, 64)
    code, out = invoke("sizes", str(spec), "--range", "32:64", "--json")
    sweeps = json.loads(out)["sweeps"]
    assert code == 0 and [s["axes"] for s in sweeps] == ["H", "W"]
    assert sweeps[0]["fit"]["closed_form"] == [{"start": 33, "step": 2}]  # odd sizes: (n - 3) even
    code, out = invoke("sizes", str(spec), "--range", "32:64")
    assert "sizes of H, 32 to 64" in out and "sizes of W, 32 to 64" in out
