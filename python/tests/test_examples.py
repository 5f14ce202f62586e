"""python/examples/ run as users run them (one epoch here), and their model files work in the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO, run_cli


def test_mlp_example(tmp_path: Path) -> None:
    script = REPO / "python" / "examples" / "mlp.py"
    r = subprocess.run([sys.executable, str(script), "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "s per epoch (median), the original's NumPy code 1.37 s" in r.stdout, r.stdout
    assert r.stdout.startswith("epoch   1/1"), r.stdout
    out = json.loads(run_cli("evaluate", "--model", str(tmp_path / "mlp.safetensors"), "--json").stdout)
    accuracy = float(r.stdout.split("test accuracy ")[1].split("%")[0]) / 100
    assert abs(out["accuracy"] - accuracy) < 1e-4 and out["accuracy"] > 0.75
