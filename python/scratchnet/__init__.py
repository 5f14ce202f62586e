"""scratchnet: neural networks from scratch in Rust, driven from Python with NumPy arrays.

    import scratchnet as sn
    x, y = sn.datasets.load("fashion-mnist", split="train")    # uint8 [60000, 28, 28], labels [60000]
    net = sn.Model.preset("mlp", seed=0)                      # or Model.from_spec / sn.load / sn.builtin()
    history = net.fit(x, y, epochs=5)                         # the CLI's recipe and per-epoch metrics
    xt, yt = sn.datasets.load("fashion-mnist", split="test")
    print(net.evaluate(xt, yt).accuracy)                      # accuracy, loss, confusion matrix
    net.save("mlp.safetensors")                               # the CLI's model files

Model files are the CLI's (`scratchnet evaluate --model mlp.safetensors` reads this one), with
PyTorch state_dict names (`Model.state_dict`). See docs/PYTHON.md for the whole API.
"""

from . import datasets
from ._model import METRICS, Evaluation, History, Model, builtin, load, presets
from ._native import EVAL_BATCH

__version__ = "0.1.0"

__all__ = [
    "EVAL_BATCH",
    "METRICS",
    "Evaluation",
    "History",
    "Model",
    "builtin",
    "datasets",
    "load",
    "presets",
]
