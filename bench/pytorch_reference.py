"""PyTorch reference for scratchnet: the same networks, initialisation and recipes, timed on the CPU
or, eagerly, on CUDA.

Benchmark dependency only (PyTorch from PyPI); scratchnet never needs it to build or test.

    python3 bench/pytorch_reference.py --threads 2             # images/s, like `cargo bench --bench end_to_end`
    python3 bench/pytorch_reference.py --load cnn.safetensors  # load_state_dict + test accuracy of a scratchnet file
    python3 bench/pytorch_reference.py --device cuda           # as `bench --device gpu` (bench/gpu.sh)
    python3 bench/pytorch_reference.py --train mlp-dropout --dataset mnist --epochs 100 --threads 1 --seed 0

--train trains one of the original's mini-batch MLP recipes (mlp, mlp-dropout, mlp-dropout-l2,
as scratchnet's presets) and prints one line per epoch: mean train loss, train accuracy (dropout
active), test accuracy and the seconds of the training pass; then a final line.

--dataset (fashion-mnist, the default, or mnist) is looked for in $SCRATCHNET_DATA/<name>,
./data/<name>, /usr/share/datasets/<name>, as raw or .gz IDX files; --data names the folder.

On CUDA the data sits on the GPU, every timed span ends with torch.cuda.synchronize(), TF32 is
off (scratchnet's shaders are plain f32), and cnn_infer is a pass over the 10,000 test images
with each batch's probabilities copied back, as `bench --device gpu` does.

Prints one line per measurement: `<name> <value> <unit>`.
"""
import argparse
import gzip
import json
import os
import statistics
import time

import numpy as np
import torch
from torch import nn

DATA = None  # the dataset's folder, set by main()
DEV = torch.device("cpu")


def sync():
    """Waits for queued CUDA work, so that a timing covers it; nothing on the CPU."""
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def find_data(name):
    """The first of $SCRATCHNET_DATA/<name>, ./data/<name>, /usr/share/datasets/<name> that exists."""
    roots = [os.environ.get("SCRATCHNET_DATA"), "data", "/usr/share/datasets"]
    for d in [os.path.join(r, name) for r in roots if r]:
        if os.path.isdir(d):
            return d
    raise SystemExit(f"pytorch_reference.py: no {name} folder in $SCRATCHNET_DATA, ./data or /usr/share/datasets")


def load_idx(path):
    """An IDX file, raw or gzipped (`path` or `path`.gz)."""
    if not os.path.exists(path):
        path += ".gz"
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(split):
    prefix = "train" if split == "train" else "t10k"
    x = load_idx(f"{DATA}/{prefix}-images-idx3-ubyte").astype(np.float32) / 255.0
    y = load_idx(f"{DATA}/{prefix}-labels-idx1-ubyte").astype(np.int64)
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
        perm = torch.randperm(x.shape[0])[: steps * batch].to(x.device)
        sync()
        t = time.perf_counter()
        for s in range(steps):
            idx = perm[s * batch:(s + 1) * batch]
            opt.zero_grad(set_to_none=False)
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()
        sync()
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


@torch.no_grad()
def infer_pass_rate(net, x, batch, reps=5):
    """A pass over all of x in batches, each batch's probabilities copied to the host (what
    scratchnet's evaluate does); median of `reps` passes after one warm-up."""
    net.eval()
    with torch.inference_mode():
        times = []
        for r in range(reps + 1):
            sync()
            t = time.perf_counter()
            for i in range(0, x.shape[0], batch):
                net(x[i:i + batch]).softmax(1).cpu()
            if r:
                times.append(time.perf_counter() - t)
    return x.shape[0] / statistics.median(times)


def sgemm_gflops(n=4096, reps=5):
    """fp32 matrix-multiply rate of PyTorch's BLAS (cuBLAS on CUDA) on n x n: the practical ceiling."""
    a, b = torch.randn(n, n, device=DEV), torch.randn(n, n, device=DEV)
    a @ b
    times = []
    for _ in range(reps):
        sync()
        t = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


# scratchnet's presets: (dropout, lr, inverse-time decay, weight decay on weights). The original adds
# λ·W to the batch-summed gradient, i.e. λ/B per step on the mean: 0.001/64; biases are not decayed.
RECIPES = {"mlp": (0.0, 0.001, 0.0, 0.0), "mlp-dropout": (0.2, 0.01, 0.0005, 0.0),
           "mlp-dropout-l2": (0.2, 0.01, 0.0005, 0.001 / 64)}


def train(recipe, x, y, xt, yt, epochs, seed, batch=64):
    """Batch 64 shuffled each epoch (the last batch partial), softmax + cross-entropy (mean), SGD
    with momentum 0.9 and lr/(1 + d·epoch) set once per epoch. PyTorch's momentum (v = μv + g;
    θ -= lr·v) is the original's (v = μv - lr·g; θ += v) except at epoch boundaries, where the
    lr changes by at most 0.05%."""
    dropout, lr, decay, wd = RECIPES[recipe]
    torch.manual_seed(seed)
    net = Net(mlp_spec(dropout)).to(DEV)
    weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in net.named_parameters() if n.endswith("bias")]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": wd}, {"params": biases, "weight_decay": 0.0}],
                          lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    print(f"# {recipe}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), seed {seed}", flush=True)
    tests, secs = [], []
    for epoch in range(epochs):
        for g in opt.param_groups:
            g["lr"] = lr / (1 + decay * epoch)
        net.train()
        perm = torch.randperm(x.shape[0], generator=gen).to(DEV)
        loss_sum, correct = 0.0, 0
        t = time.perf_counter()
        for i in range(0, x.shape[0], batch):
            idx = perm[i:i + batch]
            out = net(x[idx])
            loss = loss_fn(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == y[idx]).sum().item()
        sync()
        secs.append(time.perf_counter() - t)
        net.eval()
        with torch.no_grad():
            tests.append((net(xt).argmax(1) == yt).float().mean().item())
        train_acc = correct / x.shape[0]
        print(f"epoch {epoch + 1} loss {loss_sum / x.shape[0]:.4f} train {train_acc:.4f} "
              f"test {tests[-1]:.4f} seconds {secs[-1]:.2f}", flush=True)
    best = max(range(epochs), key=lambda e: tests[e])
    print(f"final test {tests[-1]:.4f} train {train_acc:.4f} best_test {tests[best]:.4f} at epoch {best + 1} "
          f"s/epoch {statistics.mean(secs):.2f}")


def main():
    global DATA, DEV
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", help="benchmarks, comma-separated: cnn_train, cnn_infer, mlp_train, mlp_sgd_train")
    ap.add_argument("--load", help="a scratchnet .safetensors file: load_state_dict and report test accuracy")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dataset", choices=["fashion-mnist", "mnist"], default="fashion-mnist")
    ap.add_argument("--data", help="folder of the dataset's IDX files (default: found by find_data)")
    ap.add_argument("--train", choices=list(RECIPES), help="train this recipe, printing one line per epoch")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64, help="cnn_train and cnn_infer: images per step")
    a = ap.parse_args()
    DATA = a.data or find_data(a.dataset)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("pytorch_reference.py: --device cuda but torch.cuda.is_available() is False")
        DEV = torch.device("cuda")
        # Same arithmetic as scratchnet's f32 shaders: no TF32 in convolutions or products.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
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
    x, y, xt = x.to(DEV), y.to(DEV), xt.to(DEV)
    if a.train:
        train(a.train, x, y, xt, yt.to(DEV), a.epochs, a.seed)
        return
    net = lambda spec: Net(spec).to(DEV)
    print(f"threads {a.threads} count")
    wanted = lambda name: a.only is None or name in a.only.split(",")
    if wanted("cnn_train"):
        # At least 1,280 images a timed repetition, as the Rust side.
        steps = max(20, 1280 // a.batch)
        print(f"cnn_train {train_rate(net(cnn_spec()), x, y, a.batch, 0.005, steps):.0f} images/s")
    if wanted("cnn_infer"):
        if DEV.type == "cuda":
            print(f"cnn_infer {infer_pass_rate(net(cnn_spec()), xt, 64):.0f} images/s")
        else:
            print(f"cnn_infer {infer_rate(net(cnn_spec()), xt, a.batch, reps=max(30, 1920 // a.batch)):.0f} images/s")
    if wanted("mlp_train"):
        print(f"mlp_train {train_rate(net(mlp_spec(0)), x, y, 64, 0.001, 300, reps=5):.0f} images/s")
    if wanted("mlp_sgd_train"):
        # The original's per-sample variant: plain SGD, no momentum (scratchnet's `mlp-sgd` preset).
        print(f"mlp_sgd_train {train_rate(net(mlp_spec(0)), x, y, 1, 0.001, 3000, reps=3, momentum=0.0):.0f} images/s")
    print(f"sgemm_ceiling {sgemm_gflops():.0f} GFLOP/s")


if __name__ == "__main__":
    main()
