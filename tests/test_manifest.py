"""An artifact's manifest is written and read by one class (runtime.ArtifactManifest): what compile writes,
the runtime reads back equal, and each field's rule refuses a wrong value by name. (Damaged artifacts as
a whole: tests/test_hostile_files.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnndsl.runtime import KERNELS, LIBRARY, MANIFEST, PARAMS, ArtifactError, ArtifactManifest, read_manifest

SHA = "ab" * 32
MANIFEST_FIELDS = dict(network="resnet18", graph_sha256=SHA, target_kind="llvm", device="cpu", dtype="float32",
                       inputs={"image": [None, 3, 224, 224]}, outputs={"logits": [None, 1000]},
                       params=["conv1.weight"], files={LIBRARY: SHA, PARAMS: SHA}, target="llvm -num-cores=2",
                       layout="nhwc", tuning={"trials": 10}, tvm="0.27.0")


def test_what_is_written_reads_back_equal(tmp_path: Path) -> None:
    manifest = ArtifactManifest(**MANIFEST_FIELDS)  # type: ignore[arg-type]
    manifest.write(tmp_path)
    assert read_manifest(tmp_path) == manifest
    assert read_manifest(tmp_path).input_shapes == {"image": (None, 3, 224, 224)}
    assert "cuda_kernels" not in json.loads((tmp_path / MANIFEST).read_text())


@pytest.mark.parametrize(("edit", "message"), [
    ({"tuning": "fast"}, "`tuning` must be a map or null"),
    ({"cuda_graph": 1}, "`cuda_graph` must be `true` or `false`"),
    ({"files": {LIBRARY: SHA, PARAMS: SHA, KERNELS: SHA}}, f"lists {KERNELS} without `cuda_kernels`"),
    ({"cuda_kernels": {"arch": "sm_90"}}, "`cuda_kernels` must be null or a map"),
    ({"graph_sha256": "xyz"}, "`graph_sha256` must be a sha256 in hex"),
])
def test_each_field_is_checked_by_its_rule(tmp_path: Path, edit: dict[str, object], message: str) -> None:
    ArtifactManifest(**MANIFEST_FIELDS).write(tmp_path)  # type: ignore[arg-type]
    fields = {**json.loads((tmp_path / MANIFEST).read_text()), **edit}
    (tmp_path / MANIFEST).write_text(json.dumps(fields))
    with pytest.raises(ArtifactError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(tmp_path)


def test_facts_recorded_later_have_defaults(tmp_path: Path) -> None:
    """An artifact written before `layout`, `cuda_graph` or `tvm` were recorded still loads."""
    ArtifactManifest(**MANIFEST_FIELDS).write(tmp_path)  # type: ignore[arg-type]
    fields = json.loads((tmp_path / MANIFEST).read_text())
    for name in ("layout", "cuda_graph", "tvm", "tuning", "target"):
        del fields[name]
    (tmp_path / MANIFEST).write_text(json.dumps(fields))
    assert read_manifest(tmp_path).cuda_graph is False
