"""Pickles shaped like the original NumPy/CuPy project's saved networks, for tests/import_pickle.rs.

  python3 make_pickles.py OUT FASHION.u8 MNIST.u8 N
  python3 make_pickles.py --seeds DIR     (the fuzzers' seeds: fuzz/seeds/pickle)

FASHION.u8 and MNIST.u8 hold N test images of each data set (28 x 28 bytes each).

The original saves a network with pickle.dump(network, f): the list of its layer objects. This
script defines classes with the original's module, class and attribute names (modules made with
types.ModuleType and registered in sys.modules, so pickle names them as the original's files
would), trains nothing but runs one forward pass in training mode so every cache a trained object
holds is filled (inputs, outputs, im2col matrices, boolean pooling masks, dropout masks, momentum
buffers), and writes:

  cnn*.pkl     a CNN shaped like the original's (fewer channels): protocols 4 (the default), 0, 1,
               2 and 5, float32 arrays, CuPy-style arrays (cupy._core.core.array(numpy array)),
               a Fortran-order weight matrix
  mlp*.pkl     784-128-64-10 with Leaky_ReLU, Dropout and Softmax, as the original's MLPs
  *.probs.f32  each network's probabilities (NumPy, float64, evaluation mode) on the N images of
               its data set (pixel / 255), little-endian f32, N x 10
  evil.pkl     a network whose Dense layer holds an object pickled as posix.system("...")
  evil.pt      a torch.save-style zip whose data.pkl calls os.system; evil-legacy.pt the same as a
               bare pickle (PyTorch's format before 1.6)
  unknown.pkl  a network with a layer class the original does not have
  nochain.pkl  a CNN whose Dense layer takes more inputs than the convolutions give

Weights are drawn in float64 and rounded to float32 values, so every variant holds the same numbers.
"""
import os
import pickle
import sys
import types
import zipfile

import numpy as np

rng = np.random.default_rng(7)


def module(name, source):
    m = types.ModuleType(name)
    sys.modules[name] = m
    exec(source, m.__dict__)
    return m


# A stand-in for CuPy: its arrays pickle as cupy._core.core.array(<numpy array>), as CuPy's do.
for name in ["cupy", "cupy._core"]:
    sys.modules[name] = types.ModuleType(name)
cupy_core = module("cupy._core.core", '''
def array(a):
    return ndarray(a)

class ndarray:
    def __init__(self, a):
        self.a = a
    def get(self):
        return self.a
    def __reduce__(self):
        return (array, (self.a,))
''')
sys.modules["cupy._core"].core = cupy_core
sys.modules["cupy"]._core = sys.modules["cupy._core"]

module("convolution", '''
import numpy as np

def windows(x, k):
    """(n, c, h, w) -> im2col matrix (c*k*k, oh*ow*n), rows in (c, i, j) order."""
    n, c, h, w = x.shape
    oh, ow = h - k + 1, w - k + 1
    s = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # n, c, oh, ow, k, k
    return s.transpose(1, 4, 5, 2, 3, 0).reshape(c * k * k, oh * ow * n)

class Convolution:
    def __init__(self, input_shape, kernel_size, depth, kernels, momentum=0.9):
        self.input_depth, self.input_height, self.input_width = input_shape
        self.depth, self.kernel_size, self.input_shape = depth, kernel_size, input_shape
        self.output_height = self.input_height - kernel_size + 1
        self.output_width = self.input_width - kernel_size + 1
        self.kernels = kernels
        self.biases = np.zeros((depth, 1))
        self.momentum = momentum
        self.v_k = np.zeros_like(self.kernels)
        self.v_b = np.zeros_like(self.biases)

    def forward(self, x):
        self.input = x
        n = x.shape[0]
        self.kernels_col = self.kernels.reshape(self.depth, -1)
        self.input_col = windows(x, self.kernel_size)
        out = self.kernels_col @ self.input_col + self.biases
        return out.reshape(self.depth, self.output_height, self.output_width, n).transpose(3, 0, 1, 2)
''')

module("pooling", '''
import numpy as np

class MaxPooling:
    def __init__(self, input_shape, pool_size=2, stride=2):
        self.input_shape, self.pool_size, self.stride = input_shape, pool_size, stride
        depth, h, w = input_shape
        self.out_h = (h - pool_size) // stride + 1
        self.out_w = (w - pool_size) // stride + 1

    def forward(self, x):
        self.input = x
        n, c, h, w = x.shape
        s = self.stride
        r = x[:, :, :self.out_h * s, :self.out_w * s].reshape(n, c, self.out_h, s, self.out_w, s)
        self.output = r.max(axis=(3, 5))
        self.mask = r == self.output[:, :, :, np.newaxis, :, np.newaxis]
        return self.output
''')

module("dropout", '''
import numpy as np

class Dropout:
    def __init__(self, rate):
        self.rate, self.mask, self.training = rate, None, True

    def forward(self, x):
        if self.training:
            self.mask = (np.random.default_rng(1).random(x.shape) > self.rate) / (1 - self.rate)
            return x * self.mask
        return x
''')

module("reshape", '''
class Reshape:
    def __init__(self, input_shape, output_shape):
        self.input_shape, self.output_shape = input_shape, output_shape

    def forward(self, x):
        self.batch_size = x.shape[0]
        return x.reshape(self.batch_size, -1).T
''')

module("dense", '''
import numpy as np

class Dense:
    def __init__(self, weights, bias, momentum=0.9, lambda_reg=0.0):
        self.weights, self.bias = weights, bias
        self.momentum, self.lambda_reg = momentum, lambda_reg
        self.v_w, self.v_b = np.zeros_like(weights), np.zeros_like(bias)

    def forward(self, x):
        self.input = x
        return self.weights @ x + self.bias
''')

module("activation_functions", '''
import numpy as np

class Leaky_ReLU:
    def __init__(self, a=0.01):
        self.a = a
        self.activation, self.activation_prime = self.leaky_relu, self.leaky_relu_prime

    def leaky_relu(self, x):
        return np.where(x >= 0, x, self.a * x)

    def leaky_relu_prime(self, x):
        return np.where(x >= 0, 1, self.a)

    def forward(self, x):
        self.input = x
        return self.activation(x)

class Softmax:
    def forward(self, x):
        e = np.exp(x - np.max(x, axis=0, keepdims=True))
        self.output = e / np.sum(e, axis=0, keepdims=True)
        return self.output
''')

import activation_functions as af  # noqa: E402
import convolution  # noqa: E402
import dense  # noqa: E402
import dropout  # noqa: E402
import pooling  # noqa: E402
import reshape  # noqa: E402


def weights(*shape, scale):
    return (rng.standard_normal(shape) * scale).astype(np.float32).astype(np.float64)


def cnn(dense_in=None):
    c1, c2, c3, hidden = 4, 8, 8, 32
    layers = [
        convolution.Convolution((1, 28, 28), 3, c1, weights(c1, 1, 3, 3, scale=0.5)),
        af.Leaky_ReLU(),
        convolution.Convolution((c1, 26, 26), 3, c2, weights(c2, c1, 3, 3, scale=0.25)),
        af.Leaky_ReLU(),
        pooling.MaxPooling((c2, 24, 24)),
        dropout.Dropout(0.25),
        convolution.Convolution((c2, 12, 12), 3, c3, weights(c3, c2, 3, 3, scale=0.2)),
        af.Leaky_ReLU(),
        pooling.MaxPooling((c3, 10, 10)),
        dropout.Dropout(0.25),
        reshape.Reshape((c3, 5, 5), (c3 * 25, 1)),
        dense.Dense(weights(hidden, dense_in or c3 * 25, scale=0.1), weights(hidden, 1, scale=0.1)),
        af.Leaky_ReLU(0.05),
        dropout.Dropout(0.5),
        dense.Dense(weights(10, hidden, scale=0.3), weights(10, 1, scale=0.1)),
        af.Softmax(),
    ]
    for conv in layers[0], layers[2], layers[6]:
        conv.biases = weights(conv.depth, 1, scale=0.1)
    return layers


def mlp():
    return [
        dense.Dense(weights(128, 784, scale=0.05), weights(128, 1, scale=0.1)),
        af.Leaky_ReLU(),
        dropout.Dropout(0.2),
        dense.Dense(weights(64, 128, scale=0.1), weights(64, 1, scale=0.1)),
        af.Leaky_ReLU(),
        dropout.Dropout(0.2),
        dense.Dense(weights(10, 64, scale=0.3), weights(10, 1, scale=0.1)),
        af.Softmax(),
    ]


def forward(layers, x, training):
    for layer in layers:
        if isinstance(layer, dropout.Dropout):
            layer.training = training
        x = layer.forward(x)
    return x


def images(path, n):
    return np.fromfile(path, dtype=np.uint8)[:n * 784].reshape(n, 1, 28, 28)


def run(layers, pixels, flat):
    x = pixels.astype(np.float64) / 255
    x = x.reshape(len(x), -1).T if flat else x
    p = forward(layers, x, False).T
    # Then a training step's forward pass (on 8 images) fills the caches a trained network is saved with.
    forward(layers, x[..., :8] if flat else x[:8], True)
    return p


def converted(layers, f):
    """The network with every array attribute passed through f (layers copied)."""
    out = []
    for layer in layers:
        copy = object.__new__(type(layer))
        copy.__dict__.update({k: f(v) if isinstance(v, np.ndarray) else v for k, v in layer.__dict__.items()})
        if isinstance(layer, af.Leaky_ReLU):
            copy.activation, copy.activation_prime = copy.leaky_relu, copy.leaky_relu_prime
        out.append(copy)
    return out


def save(name, network, protocol=None):
    with open(os.path.join(OUT, name), "wb") as f:
        pickle.dump(network, f, protocol=protocol)


def probs(name, p):
    p.astype("<f4").tofile(os.path.join(OUT, name + ".probs.f32"))


def tiny_seeds():
    """Networks for 1 x 6 x 6 images, caches of 2 images: small inputs for the fuzzers."""
    x = rng.integers(0, 256, (2, 1, 6, 6)) / 255
    cnn = [
        convolution.Convolution((1, 6, 6), 3, 2, weights(2, 1, 3, 3, scale=0.5)),
        af.Leaky_ReLU(),
        pooling.MaxPooling((2, 4, 4)),
        dropout.Dropout(0.25),
        reshape.Reshape((2, 2, 2), (8, 1)),
        dense.Dense(weights(3, 8, scale=0.3), weights(3, 1, scale=0.1)),
        af.Softmax(),
    ]
    forward(cnn, x, True)
    mlp = [
        dense.Dense(np.asfortranarray(weights(4, 36, scale=0.2)), weights(4, 1, scale=0.1)),
        af.Leaky_ReLU(0.1),
        dense.Dense(weights(3, 4, scale=0.3), weights(3, 1, scale=0.1)),
        af.Softmax(),
    ]
    forward(mlp, x.reshape(2, -1).T, True)
    for protocol in 0, 2, 4, 5:
        save(f"cnn-p{protocol}.pkl", cnn, protocol)
    save("mlp-p2.pkl", mlp, 2)
    save("mlp-p5.pkl", mlp, 5)
    save("mlp-cupy.pkl", converted(mlp, cupy_core.ndarray), 4)


if sys.argv[1] == "--seeds":
    OUT = sys.argv[2]
    tiny_seeds()
    sys.exit()

OUT, FASHION, MNIST, N = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fashion, digits = images(FASHION, N), images(MNIST, N)

net = cnn()
probs("cnn", run(net, fashion, flat=False))
# The first Dense's weights in Fortran order in the default-protocol file.
fortran = converted(net, lambda a: a)
fortran[11].weights = np.asfortranarray(fortran[11].weights)
save("cnn.pkl", fortran)
for protocol in 0, 1, 2, 5:
    save(f"cnn-p{protocol}.pkl", fortran if protocol == 5 else net, protocol)
save("cnn-f32.pkl", converted(net, lambda a: a.astype(np.float32) if a.dtype == np.float64 else a))
save("cnn-cupy.pkl", converted(net, cupy_core.ndarray))

net = mlp()
probs("mlp", run(net, fashion, flat=True))
save("mlp.pkl", net)
save("mlp-p2.pkl", converted(net, cupy_core.ndarray), 2)
net = mlp()
probs("mlp-mnist", run(net, digits, flat=True))
save("mlp-mnist.pkl", net)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this pickle ran a command",))


net = mlp()
net[3].momentum = Evil()
save("evil.pkl", net)
data = pickle.dumps({"1.weight": Evil()}, protocol=2)
with zipfile.ZipFile(os.path.join(OUT, "evil.pt"), "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", data)
    z.writestr("archive/byteorder", "little")
with open(os.path.join(OUT, "evil-legacy.pt"), "wb") as f:
    f.write(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + data)

tanh = module("activation_tanh", "class Tanh:\n    pass\n")
tanh.Tanh.__module__ = "activation_functions"
tanh.Tanh.__qualname__ = "Tanh"
af.Tanh = tanh.Tanh
net = mlp()
net[1] = af.Tanh()
save("unknown.pkl", net)

save("nochain.pkl", cnn(dense_in=8 * 36))
print(f"wrote pickles and probabilities for {N} images to {OUT}")
