"""The original project's MLP script (784-128-64-10, leaky ReLU, softmax, mini-batches of 64, SGD
with momentum 0.9, lr 0.001: the `mlp` preset) on Fashion-MNIST, with the time per epoch against the
original NumPy code's 1.37 s. Run: python examples/mlp.py [EPOCHS], or cell by cell (# %%) in
Jupyter / VS Code."""

# %%
import sys

import scratchnet as sn

epochs = int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 10  # Jupyter passes -f ...
x_train, y_train = sn.datasets.load("fashion-mnist", split="train")
x_test, y_test = sn.datasets.load("fashion-mnist", split="test")
net = sn.Model.preset("mlp", seed=0)

# %%
history = net.fit(x_train, y_train, epochs=epochs, test_data=(x_test, y_test))
per_epoch = sorted(e["seconds"] for e in history)[len(history) // 2]
print(f"test accuracy {net.evaluate(x_test, y_test).accuracy:.2%} after {epochs} epochs")
print(f"{per_epoch:.2f} s per epoch (median), the original's NumPy code 1.37 s: {1.37 / per_epoch:.1f}x as fast")
net.save("mlp.safetensors")  # `scratchnet evaluate --model mlp.safetensors` reads it
