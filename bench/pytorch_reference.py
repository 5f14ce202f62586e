"""PyTorch reference for scratchnet: the same networks, initialisation and recipes, timed on the CPU.

Benchmark dependency only (PyTorch from PyPI); scratchnet never needs it to build or test.

    python3 bench/pytorch_reference.py --threads 2             # images/s, like `cargo run --release --example bench`
    python3 bench/pytorch_reference.py --load cnn.safetensors  # load_state_dict + test accuracy of a scratchnet file

Prints one line per measurement: `<name> <value> <unit>`.
"""
import argparse
import gzip
import json
import statistics
import time

import numpy as np
import torch
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist"


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(split):
    prefix = "train" if split == "train" else "t10k"
    x = load_idx(f"{DATA}/{prefix}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = load_idx(f"{DATA}/{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


class Net(nn.Module):
    """`layers` is an nn.Sequential, so state_dict keys are `layers.<i>.weight`, as in scratchnet files."""

    def __init__(self, spec):
        super().__init__()
        mods = []
        for l in spec["layers"]:
            t = l["type"]
            if t == "conv2d":
                mods.append(nn.Conv2d(l["in_channels"], l["out_channels"], l["kernel_size"], l.get("stride", 1), l.get("padding", 0)))
            elif t == "linear":
                mods.append(nn.Linear(l["in_features"], l["out_features"]))
            elif t == "leaky_relu":
                mods.append(nn.LeakyReLU(l.get("negative_slope", 0.01)))
            elif t == "relu":
                mods.append(nn.ReLU())
            elif t == "max_pool2d":
                mods.append(nn.MaxPool2d(l["kernel_size"], l.get("stride") or l["kernel_size"]))
            elif t == "dropout":
                mods.append(nn.Dropout(l["p"]))
            elif t == "flatten":
                mods.append(nn.Flatten())
        self.layers = nn.Sequential(*mods)
        for m in self.layers:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_in) ** 0.5)  # He, as the original
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.layers(x)


def mlp_spec(dropout):
    layers = [{"type": "flatten"}]
    for i, o in [(784, 128), (128, 64)]:
        layers += [{"type": "linear", "in_features": i, "out_features": o}, {"type": "leaky_relu"}]
        if dropout:
            layers.append({"type": "dropout", "p": dropout})
    layers.append({"type": "linear", "in_features": 64, "out_features": 10})
    return {"input": [1, 28, 28], "layers": layers}


def cnn_spec():
    c = lambda i, o: {"type": "conv2d", "in_channels": i, "out_channels": o, "kernel_size": 3}
    r, p = {"type": "leaky_relu"}, {"type": "max_pool2d", "kernel_size": 2}
    return {"input": [1, 28, 28], "layers": [
        c(1, 32), r, c(32, 64), r, p, {"type": "dropout", "p": 0.25}, c(64, 128), r, p, {"type": "dropout", "p": 0.25},
        {"type": "flatten"}, {"type": "linear", "in_features": 3200, "out_features": 512}, r,
        {"type": "dropout", "p": 0.5}, {"type": "linear", "in_features": 512, "out_features": 10}]}


def train_rate(net, x, y, batch, lr, steps, reps=7, momentum=0.9):
    """Median images/s of `steps` SGD steps, after one warm-up round."""
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    times = []
    for r in range(reps + 1):
        perm = torch.randperm(x.shape[0])[: steps * batch]
        t = time.perf_counter()
        for s in range(steps):
            idx = perm[s * batch:(s + 1) * batch]
            opt.zero_grad(set_to_none=False)
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()
        if r:
            times.append(time.perf_counter() - t)
    return steps * batch / statistics.median(times)


@torch.no_grad()
def infer_rate(net, x, batch, reps=30):
    """Evaluation mode without autograd (inference_mode), as inference is run."""
    net.eval()
    xb = x[:batch]
    with torch.inference_mode():
        net(xb)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            net(xb)
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def sgemm_gflops(n=4096, reps=5):
    """fp32 matrix-multiply rate of PyTorch's BLAS on n x n: the machine's practical ceiling."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", help="one benchmark: cnn_train, cnn_infer, mlp_train or mlp_sgd_train")
    ap.add_argument("--load", help="a scratchnet .safetensors file: load_state_dict and report test accuracy")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    xt, yt = load("test")
    if a.load:
        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(a.load, framework="pt") as f:
            spec = json.loads(f.metadata()["spec"])
        net = Net(spec)
        net.load_state_dict(load_file(a.load), strict=True)
        net.eval()
        with torch.no_grad():
            acc = (net(xt).argmax(1) == yt).float().mean().item()
        print(f"pytorch_test_accuracy {acc:.4f} fraction")
        return
    x, y = load("train")
    print(f"threads {a.threads} count")
    wanted = lambda name: a.only in (None, name)
    if wanted("cnn_train"):
        print(f"cnn_train {train_rate(Net(cnn_spec()), x, y, 64, 0.005, 20):.0f} images/s")
    if wanted("cnn_infer"):
        print(f"cnn_infer {infer_rate(Net(cnn_spec()), xt, 64):.0f} images/s")
    if wanted("mlp_train"):
        print(f"mlp_train {train_rate(Net(mlp_spec(0)), x, y, 64, 0.001, 300, reps=5):.0f} images/s")
    if wanted("mlp_sgd_train"):
        # The original's per-sample variant: plain SGD, no momentum (scratchnet's `mlp-sgd` preset).
        print(f"mlp_sgd_train {train_rate(Net(mlp_spec(0)), x, y, 1, 0.001, 3000, reps=3, momentum=0.0):.0f} images/s")
    print(f"sgemm_ceiling {sgemm_gflops():.0f} GFLOP/s")


if __name__ == "__main__":
    main()
