#!/usr/bin/env python3
"""Writes the data the demo page bundles.

From the official Fashion-MNIST files (Debian's dataset-fashion-mnist installs them under
/usr/share/datasets/fashion-mnist/; --fashion DIR to read them elsewhere):

  static/samples/NN-<class>.png, samples.json  10 test images per class (the first of each class
                                               in t10k order), 28x28 8-bit gray PNG, true labels
  static/data/train-5000-*-idx*-ubyte.gz      the first 5,000 training images and labels
  static/data/test-1000-*-idx*-ubyte.gz       the first 1,000 test images and labels

and the same from the official MNIST files: the test set from tests/data/mnist/ (committed, the
original t10k .gz files), the training set from data/mnist/ (--mnist-train DIR; the official
train-*-ubyte files, raw or .gz, where `--dataset mnist` looks; not committed):

  static/mnist/samples/NN-<digit>.png, samples.json
  static/mnist/data/train-5000-*, test-1000-*

Deterministic (gzip mtime 0); rerun only to change what is bundled: python3 web/tools/make_data.py
"""
import argparse, gzip, json, os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(HERE, "..", "static")
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DIGITS = [str(d) for d in range(10)]
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def read_idx(folder, name):
    """An IDX file, gzip-compressed (name.gz) or not (name)."""
    path = os.path.join(folder, name)
    if os.path.exists(path + ".gz"):
        with gzip.open(path + ".gz") as f:
            data = f.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4 : 4 + 4 * rank])
    return dims, data[4 + 4 * rank :]


def write_idx_gz(path, dims, body):
    head = bytes([0, 0, 8, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims)
    with open(path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0, filename="") as g:
            g.write(head + body)


def png_gray(w, h, px):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + px[y * w : (y + 1) * w] for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit grayscale, no colour chunks
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def write_set(train_dir, test_dir, out, classes, slugs):
    """The training and test subsets and the 100 samples of one dataset, into out/data and out/samples."""
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    os.makedirs(os.path.join(out, "samples"), exist_ok=True)
    (n, h, w), images = read_idx(train_dir, "train-images-idx3-ubyte")
    (_,), labels = read_idx(train_dir, "train-labels-idx1-ubyte")
    k = 5000
    write_idx_gz(os.path.join(out, "data", "train-5000-images-idx3-ubyte.gz"), (k, h, w), images[: k * h * w])
    write_idx_gz(os.path.join(out, "data", "train-5000-labels-idx1-ubyte.gz"), (k,), labels[:k])
    (n, h, w), images = read_idx(test_dir, "t10k-images-idx3-ubyte")
    (_,), labels = read_idx(test_dir, "t10k-labels-idx1-ubyte")
    k = 1000
    write_idx_gz(os.path.join(out, "data", "test-1000-images-idx3-ubyte.gz"), (k, h, w), images[: k * h * w])
    write_idx_gz(os.path.join(out, "data", "test-1000-labels-idx1-ubyte.gz"), (k,), labels[:k])
    samples, seen = [], [0] * 10
    for i in range(n):
        c = labels[i]
        if seen[c] == 10:
            continue
        seen[c] += 1
        name = f"{c}{seen[c] - 1}-{slugs[c]}.png"
        with open(os.path.join(out, "samples", name), "wb") as f:
            f.write(png_gray(w, h, images[i * h * w : (i + 1) * h * w]))
        samples.append({"file": name, "label": c, "class": classes[c], "test_index": i})
        if sum(seen) == 100:
            break
    samples.sort(key=lambda s: s["file"])
    with open(os.path.join(out, "samples", "samples.json"), "w") as f:
        json.dump(samples, f, indent=1)
        f.write("\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST's four .gz files")
    p.add_argument("--mnist-test", default=os.path.join(ROOT, "tests", "data", "mnist"), help="MNIST's t10k files")
    p.add_argument("--mnist-train", default=os.path.join(ROOT, "data", "mnist"), help="MNIST's train files")
    a = p.parse_args()
    slugs = [c.lower().replace("/", "-").replace(" ", "-") for c in FASHION]
    write_set(a.fashion, a.fashion, OUT, FASHION, slugs)
    write_set(a.mnist_train, a.mnist_test, os.path.join(OUT, "mnist"), DIGITS, DIGIT_WORDS)


main()
