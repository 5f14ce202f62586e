"""Makes the torch.save fixtures of tests/interop.rs with real PyTorch (run once; CI does not need
PyTorch): python3 make.py  (PyTorch 2.15.0 made the committed files).

tiny.json        the network as a scratchnet spec
tiny.pt          torch.save(net.state_dict()) of that network, nn.Sequential numbering (0.weight);
                 layer 5's weight is a transposed view (a non-contiguous tensor: storage + strides)
tiny-half.pt     the same weights in float16
tiny-model.pt    torch.save(net): a whole pickled module, which scratchnet must refuse
tiny-probs.f32   PyTorch's softmax outputs on the first 100 MNIST test images (tests/data/mnist),
                 input = pixel/255, little-endian float32 [100, 10]
"""
import gzip
import json
import os

import numpy as np
import torch
from torch import nn

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(17)
net = nn.Sequential(
    nn.Conv2d(1, 4, kernel_size=3, stride=2, padding=1),  # 28 -> 14
    nn.LeakyReLU(0.01),
    nn.MaxPool2d(2),  # 14 -> 7
    nn.Flatten(),
    nn.Dropout(0.2),
    nn.Linear(4 * 7 * 7, 10),
)
with torch.no_grad():
    net[5].weight = nn.Parameter(torch.randn(196, 10).t() * 0.1)  # non-contiguous, strides (1, 10)
    net[0].bias.add_(0.05)
assert not net[5].weight.is_contiguous()
net.eval()
spec = {"input": [1, 28, 28], "layers": [
    {"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
    {"type": "leaky_relu", "negative_slope": 0.01},
    {"type": "max_pool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "dropout", "p": 0.2},
    {"type": "linear", "in_features": 196, "out_features": 10},
]}
with open(os.path.join(here, "tiny.json"), "w") as f:
    json.dump(spec, f, indent=1)
torch.save(net.state_dict(), os.path.join(here, "tiny.pt"))
torch.save({k: v.half() for k, v in net.state_dict().items()}, os.path.join(here, "tiny-half.pt"))
torch.save(net, os.path.join(here, "tiny-model.pt"))
with gzip.open(os.path.join(here, "..", "mnist", "t10k-images-idx3-ubyte.gz")) as f:
    pixels = np.frombuffer(f.read(), dtype=np.uint8, offset=16)[:100 * 784]
x = torch.from_numpy(pixels.astype(np.float32) / 255.0).reshape(100, 1, 28, 28)
with torch.no_grad():
    probs = torch.softmax(net(x), dim=1).numpy()
probs.astype("<f4").tofile(os.path.join(here, "tiny-probs.f32"))
print("made", sorted(os.listdir(here)))
