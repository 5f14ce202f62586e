"""Makes the batch-norm torch.save fixtures of tests/interop.rs with real PyTorch (run once; CI does
not need PyTorch): python3 make_bn.py  (PyTorch 2.15.0 made the committed files). Kept apart from
make.py so that rerunning it leaves those files as they are (torch.save writes a random
serialization id).

tiny-bn.json        the network as a scratchnet spec: Conv2d, BatchNorm2d, ReLU, AvgPool2d(3, stride 2),
                    Conv2d, BatchNorm2d (eps 1e-3, momentum 0.2), LeakyReLU, AdaptiveAvgPool2d(1),
                    Flatten, Linear, BatchNorm1d, ReLU, Linear
tiny-bn.pt          torch.save(net.state_dict()) after 6 training-mode passes (running statistics
                    and num_batches_tracked, a 0-dimensional int64, away from their initial values;
                    batch norms' scales and shifts set at random)
tiny-bn-probs.f32   PyTorch's softmax outputs in eval mode on the first 100 MNIST test images
                    (tests/data/mnist), input = pixel/255, little-endian float32 [100, 10]
"""
import gzip
import json
import os

import numpy as np
import torch
from torch import nn

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(23)
net = nn.Sequential(
    nn.Conv2d(1, 4, kernel_size=3, stride=2, padding=1),  # 28 -> 14
    nn.BatchNorm2d(4),
    nn.ReLU(),
    nn.AvgPool2d(3, stride=2),  # 14 -> 6
    nn.Conv2d(4, 6, kernel_size=3, padding=1),
    nn.BatchNorm2d(6, eps=1e-3, momentum=0.2),
    nn.LeakyReLU(0.01),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.Linear(6, 12),
    nn.BatchNorm1d(12),
    nn.ReLU(),
    nn.Linear(12, 10),
)
with gzip.open(os.path.join(here, "..", "mnist", "t10k-images-idx3-ubyte.gz")) as f:
    pixels = np.frombuffer(f.read(), dtype=np.uint8, offset=16)[:1000 * 784]
x_all = torch.from_numpy(pixels.astype(np.float32) / 255.0).reshape(1000, 1, 28, 28)
with torch.no_grad():
    for m in net:
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.weight.copy_(1 + 0.3 * torch.randn_like(m.weight))
            m.bias.copy_(0.2 * torch.randn_like(m.bias))
    net.train()
    # Training-mode passes on images other than the 100 the probabilities are taken on.
    for step in range(6):
        net(x_all[100 + 50 * step:150 + 50 * step])
net.eval()
assert int(net[1].num_batches_tracked) == 6
spec = {"input": [1, 28, 28], "layers": [
    {"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
    {"type": "batch_norm2d", "num_features": 4},
    {"type": "relu"},
    {"type": "avg_pool2d", "kernel_size": 3, "stride": 2},
    {"type": "conv2d", "in_channels": 4, "out_channels": 6, "kernel_size": 3, "padding": 1},
    {"type": "batch_norm2d", "num_features": 6, "eps": 1e-3, "momentum": 0.2},
    {"type": "leaky_relu", "negative_slope": 0.01},
    {"type": "adaptive_avg_pool2d", "output_size": 1},
    {"type": "flatten"},
    {"type": "linear", "in_features": 6, "out_features": 12},
    {"type": "batch_norm1d", "num_features": 12},
    {"type": "relu"},
    {"type": "linear", "in_features": 12, "out_features": 10},
]}
with open(os.path.join(here, "tiny-bn.json"), "w") as f:
    json.dump(spec, f, indent=1)
torch.save(net.state_dict(), os.path.join(here, "tiny-bn.pt"))
with torch.no_grad():
    probs = torch.softmax(net(x_all[:100]), dim=1).numpy()
probs.astype("<f4").tofile(os.path.join(here, "tiny-bn-probs.f32"))
print("made tiny-bn.json, tiny-bn.pt, tiny-bn-probs.f32;", {k: (tuple(v.shape), str(v.dtype)) for k, v in net.state_dict().items() if "num_batches" in k})
