"""Training from Python against the CLI on the same runs: `scratchnet train` and the same preset,
epochs, threads and data through `scratchnet.Model.fit`, each in a process of its own, alternating
round by round; prints the medians of the whole process's wall time and of the training passes
(the per-epoch `seconds` both record), and their ratios.

usage: python bench/python_vs_cli.py [--rounds 5] [--threads 2] [--only mlp,mlp-sgd,cnn-fast]
Needs the package installed (pip install ./python) and target/release/scratchnet built.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# name -> (preset, epochs, training images or None for all)
RUNS = {"mlp": ("mlp", 3, None), "mlp-sgd": ("mlp-sgd", 1, None), "cnn-fast": ("cnn-fast", 1, 10000)}

PY = """
import json, sys, time
import scratchnet as sn
preset, epochs, limit, threads, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
x, y = sn.datasets.load("fashion-mnist", split="train")
xt, yt = sn.datasets.load("fashion-mnist", split="test")
if limit != "all":
    x, y = x[: int(limit)], y[: int(limit)]
net = sn.Model.preset(preset, seed=0)
start = time.perf_counter()
h = net.fit(x, y, epochs=epochs, test_data=(xt, yt), threads=threads, verbose=0)
fit = time.perf_counter() - start
net.save(out)
print(json.dumps({"epochs": [e["seconds"] for e in h], "fit": fit}))
"""


def cli_exe() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    return target / "release" / "scratchnet"


def run_cli(preset: str, epochs: int, limit: int | None, threads: int, tmp: Path) -> tuple[float, float]:
    metrics = tmp / "cli.jsonl"
    metrics.unlink(missing_ok=True)
    args = [str(cli_exe()), "train", "--model", preset, "--epochs", str(epochs), "--threads", str(threads),
            "--quiet", "--out", str(tmp / "cli.safetensors"), "--metrics", str(metrics)]
    if limit:
        args += ["--limit", str(limit)]
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    wall = time.perf_counter() - start
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    return wall, sum(line["seconds"] for line in lines if "run" not in line)


def run_python(preset: str, epochs: int, limit: int | None, threads: int, tmp: Path) -> tuple[float, float]:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PY, preset, str(epochs), str(limit or "all"), str(threads),
                        str(tmp / "py.safetensors")], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    return wall, sum(json.loads(r.stdout)["epochs"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=",".join(RUNS))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in a.only.split(","):
            preset, epochs, limit = RUNS[name]
            got: dict[str, list[tuple[float, float]]] = {"cli": [], "python": []}
            for r in range(a.rounds):
                order = ["cli", "python"] if r % 2 == 0 else ["python", "cli"]
                for side in order:
                    f = run_cli if side == "cli" else run_python
                    got[side].append(f(preset, epochs, limit, a.threads, tmp))
            med = {s: (statistics.median(w for w, _ in v), statistics.median(t for _, t in v)) for s, v in got.items()}
            imgs = f"{limit or 60000} images"
            print(f"{name} ({epochs} epochs of {imgs}, test set each epoch, {a.threads} threads, {a.rounds} rounds):")
            for s in ("cli", "python"):
                walls = ", ".join(f"{w:.2f}" for w, _ in got[s])
                print(f"  {s:6} process {med[s][0]:.2f} s (median of {walls}); training passes {med[s][1]:.2f} s")
            print(f"  python / cli: process {med['python'][0] / med['cli'][0]:.3f}, "
                  f"training passes {med['python'][1] / med['cli'][1]:.3f}")


if __name__ == "__main__":
    main()
