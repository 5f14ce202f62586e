"""The type stubs match the native module (mypy's stubtest), and the package and the examples
type-check against them (mypy --strict), as users' editors and type checkers will see them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytest.importorskip("mypy", reason="mypy is part of the README's test command")


def mypy(tmp_path: Path, *args: str) -> None:
    r = subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_stubs_match_the_native_module(tmp_path: Path) -> None:
    mypy(tmp_path, "mypy.stubtest", "scratchnet._native")


def test_package_and_examples_type_check(tmp_path: Path) -> None:
    mypy(tmp_path, "mypy", "--strict", "-p", "scratchnet")
    mypy(tmp_path, "mypy", "--strict", str(REPO / "python" / "examples"))


def test_help_shows_the_docstrings() -> None:
    import pydoc

    import scratchnet as sn

    text = pydoc.render_doc(sn.Model, renderer=pydoc.plaintext)
    for words in ("predict_proba(", "Ctrl-C (KeyboardInterrupt) stops training", "pixel_max=255", "state_dict("):
        assert words in text, words
