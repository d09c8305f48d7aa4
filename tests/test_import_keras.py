"""`cnndsl import keras`: a functional model and a Sequential CNN built with Keras 3 (its torch backend),
saved as `.keras`, import with Keras's own parameter count and outputs (the verification loads the weights
into the compiled spec, permuted channels-first, and compares with Keras); the configuration is read as
data; hostile archives are refused."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
layers = keras.layers

from cnndsl.api import import_keras  # noqa: E402
from cnndsl.diagnostics import SpecError  # noqa: E402
from cnndsl.syntax.fmt import format_text  # noqa: E402


def functional() -> keras.Model:
    image = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(image)
    y = layers.Conv2D(8, 3, padding="same", name="c2")(x)
    y = layers.BatchNormalization(name="bn")(y)
    z = layers.Add(name="add")([x, y])
    branch = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(z)
    z = layers.Concatenate(name="cat")([z, branch])
    z = layers.MaxPooling2D(2, name="pool")(z)
    z = layers.Flatten(name="flat")(z)
    z = layers.Dropout(0.3, name="drop")(z)
    out = layers.Dense(10, activation="softmax", name="fc")(z)
    return keras.Model(image, out, name="functional_cnn")


def sequential() -> keras.Model:
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(16, 5, strides=2, activation="relu"),
        layers.AveragePooling2D(2, padding="same"),
        layers.Conv2D(32, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(max_value=6.0),
        layers.GlobalAveragePooling2D(),
        layers.Dense(10),
    ], name="sequential_cnn")


def moving_statistics(model: keras.Model) -> int:
    return sum(int(w.numpy().size) for layer in model.layers if isinstance(layer, layers.BatchNormalization)
               for w in (layer.moving_mean, layer.moving_variance))


@pytest.mark.parametrize("build", [functional, sequential], ids=["functional", "sequential"])
def test_keras_models_import_with_their_count_and_outputs(build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = build()
    path = tmp_path / "model.keras"
    model.save(path)
    imported = import_keras(path)
    # count_params counts batch norm's moving statistics too; a spec counts them as buffers
    assert imported.network.report().totals.params + moving_statistics(model) == model.count_params()
    assert imported.max_difference is not None and imported.max_difference <= 1e-5
    assert format_text(imported.text, "model.cnn") == imported.text


def test_the_configuration_alone_imports_the_same_spec(tmp_path: Path) -> None:
    model = functional()
    model.save(tmp_path / "model.keras")
    (tmp_path / "model.json").write_text(model.to_json())
    from_archive = import_keras(tmp_path / "model.keras", name="m").text
    from_config = import_keras(tmp_path / "model.json", name="m")
    def body(text: str) -> list[str]:  # the header names the file read
        return text.splitlines()[1:]

    assert body(from_config.text) == body(from_archive) and from_config.max_difference is None


def test_hostile_archives_are_refused(tmp_path: Path) -> None:
    model = sequential()
    good = tmp_path / "good.keras"
    model.save(good)
    extra = tmp_path / "extra.keras"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(extra, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr("payload.py", "import os; os.system('echo owned')")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[:200])
    lambda_config = json.loads(zipfile.ZipFile(good).read("config.json"))
    lambda_config["config"]["layers"].insert(1, {"class_name": "Lambda", "config": {"name": "evil", "function": "x"}})
    lambda_file = tmp_path / "lambda.json"
    lambda_file.write_text(json.dumps(lambda_config))
    not_a_model = tmp_path / "list.json"
    not_a_model.write_text("[1, 2, 3]")
    for path, code, text in [(extra, "E705", "payload.py"), (truncated, "E705", "not a .keras archive"),
                             (lambda_file, "E703", "Lambda layer cannot be written"),
                             (not_a_model, "E705", "not a Keras model configuration")]:
        with pytest.raises(SpecError) as info:
            import_keras(path)
        error = info.value.diagnostics[0]
        assert (error.code, error.location.file if error.location else "") == (code, str(path)), error
        assert text in error.message
