"""Shared fixtures: the repository, the CLI binary, Fashion-MNIST, small IDX folders for the CLI."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

import scratchnet as sn

REPO = Path(__file__).resolve().parents[2]


def cli_path() -> Path:
    """The `scratchnet` binary `cargo build --release` (or `cargo test --release`) made."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    exe = target / "release" / "scratchnet"
    if not exe.exists():
        pytest.fail(f"{exe} not found: run `cargo build --release` first (the README's test command does)")
    return exe


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(cli_path()), *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert r.returncode == 0, f"scratchnet {' '.join(args)} failed:\n{r.stderr}"
    return r


@pytest.fixture(scope="session")
def fashion_train() -> Tuple[np.ndarray, np.ndarray]:
    return sn.datasets.load("fashion-mnist", split="train")


@pytest.fixture(scope="session")
def fashion_test() -> Tuple[np.ndarray, np.ndarray]:
    return sn.datasets.load("fashion-mnist", split="test")


def write_idx(folder: Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> Path:
    """A dataset folder in the official IDX layout (gzip), for `--dataset fashion-mnist --data-dir`."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, x, y in (("train", x_train, y_train), ("t10k", x_test, y_test)):
        n, h, w = x.shape
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, h, w) + np.ascontiguousarray(x, dtype=np.uint8).tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + np.ascontiguousarray(y, dtype=np.uint8).tobytes())
    return folder


def metrics_epochs(path: Path) -> List[Dict[str, Any]]:
    """The per-epoch lines of a `--metrics` file (its header lines hold "run")."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [line for line in lines if "run" not in line]


def assert_same_state(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].shape == b[k].shape, k
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
