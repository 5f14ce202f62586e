"""Independent check that scratchnet model files follow PyTorch's conventions.

Reads a .safetensors model with the `safetensors` package, rebuilds the network from its metadata
spec with NumPy using PyTorch's definitions (Conv2d: cross-correlation, NCHW input, weights
[out, in, kh, kw]; Linear: x @ W.T + b, weights [out, in]; Flatten: C-order over (C, H, W);
MaxPool2d and AvgPool2d: floor mode, no padding; AdaptiveAvgPool2d(1): the mean of each plane;
BatchNorm2d/1d in eval mode: (x - running_mean) / sqrt(running_var + eps) * weight + bias per
channel, with num_batches_tracked a 0-dimensional int64), and compares its softmax outputs with
scratchnet's.

usage: python3 pytorch_layout.py MODEL INPUTS.f32 PROBS.f32 N
"""
import json
import sys

import numpy as np
from safetensors import safe_open


def conv2d(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    f, _, k, _ = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, f, oh, ow), dtype=np.float64)
    for ki in range(k):
        for kj in range(k):
            patch = x[:, :, ki:ki + stride * oh:stride, kj:kj + stride * ow:stride]  # n, c, oh, ow
            out += np.einsum("nchw,fc->nfhw", patch, w[:, :, ki, kj])
    return out + b[None, :, None, None]


def max_pool(x, k, s):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.full((n, c, oh, ow), -np.inf)
    for ki in range(k):
        for kj in range(k):
            out = np.maximum(out, x[:, :, ki:ki + s * oh:s, kj:kj + s * ow:s])
    return out


def avg_pool(x, k, s):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.zeros((n, c, oh, ow))
    for ki in range(k):
        for kj in range(k):
            out += x[:, :, ki:ki + s * oh:s, kj:kj + s * ow:s]
    return out / (k * k)


def check_counters(tensors):
    """Batch norms' step counters are stored as PyTorch keeps them: int64 of shape ()."""
    for k, v in tensors.items():
        if k.endswith(".num_batches_tracked"):
            assert v.dtype == np.int64 and v.shape == (), (k, v.dtype, v.shape)
            assert v >= 0, (k, v)


def forward(spec, x, tensors):
    """PyTorch's forward pass of the spec's nn.Sequential on x (float64), parameters by
    state_dict name: tensors[f"layers.{i}.weight"]."""
    for i, layer in enumerate(spec["layers"]):
        t = layer["type"]
        if t == "conv2d":
            w, b = tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]
            assert w.shape == (layer["out_channels"], layer["in_channels"], layer["kernel_size"], layer["kernel_size"])
            x = conv2d(x, w, b, layer.get("stride", 1), layer.get("padding", 0))
        elif t == "linear":
            w, b = tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]
            assert w.shape == (layer["out_features"], layer["in_features"])
            x = x @ w.T + b
        elif t == "leaky_relu":
            x = np.where(x >= 0, x, layer.get("negative_slope", 0.01) * x)
        elif t == "relu":
            x = np.maximum(x, 0)
        elif t == "max_pool2d":
            k = layer["kernel_size"]
            x = max_pool(x, k, layer.get("stride") or k)
        elif t in ("batch_norm2d", "batch_norm1d"):
            # eval mode: the running statistics, not the batch's.
            c = layer["num_features"]
            shape = (1, c, 1, 1) if t == "batch_norm2d" else (1, c)
            assert x.ndim == len(shape) and x.shape[1] == c, (t, x.shape)
            p = {k: tensors[f"layers.{i}.{k}"].reshape(shape) for k in ("weight", "bias", "running_mean", "running_var")}
            x = (x - p["running_mean"]) / np.sqrt(p["running_var"] + layer.get("eps", 1e-5)) * p["weight"] + p["bias"]
        elif t == "avg_pool2d":
            k = layer["kernel_size"]
            x = avg_pool(x, k, layer.get("stride") or k)
        elif t == "adaptive_avg_pool2d":
            assert layer["output_size"] == 1
            x = x.mean(axis=(2, 3), keepdims=True)
        elif t == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif t == "dropout":
            pass
        else:
            raise SystemExit(f"unknown layer type {t}")
    return x


def main():
    path, inputs, probs, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
        raw = {k: f.get_tensor(k) for k in f.keys()}
    check_counters(raw)
    tensors = {k: v.astype(np.float64) for k, v in raw.items()}
    assert meta["format"] == "scratchnet/1", meta.get("format")
    spec = json.loads(meta["spec"])
    x = np.fromfile(inputs, dtype="<f4").astype(np.float64).reshape([n] + spec["input"])
    x = forward(spec, x, tensors)
    z = x - x.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    ours = np.fromfile(probs, dtype="<f4").reshape(p.shape)
    err = np.abs(p - ours).max()
    assert err < 1e-4, f"max |difference| {err}"
    print(f"OK: {len(tensors)} tensors, {n} inputs, max |difference| {err:.2e}")


if __name__ == "__main__":
    main()
