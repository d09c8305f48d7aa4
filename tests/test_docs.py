"""Generated docs are current, and the README's claims hold."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tools.gen_docs import DOCS, EDITOR_FILES, GENERATED


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_doc_is_current(name: str) -> None:
    assert (DOCS / name).read_text() == GENERATED[name](), f"docs/{name} is stale: run `make docs`"


@pytest.mark.parametrize("name", sorted(EDITOR_FILES))
def test_generated_editor_file_is_current(name: str) -> None:
    assert (ROOT / name).read_text() == EDITOR_FILES[name](), f"{name} is stale: run `make docs`"


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
