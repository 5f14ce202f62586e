#!/usr/bin/env python3
"""Writes the data the demo page bundles, from the official Fashion-MNIST files (Debian's
dataset-fashion-mnist installs them under /usr/share/datasets/fashion-mnist/):

  static/samples/NN-<class>.png, samples.json  10 test images per class (the first of each class
                                               in t10k order), 28x28 8-bit gray PNG, true labels
  static/data/train-5000-*-idx*-ubyte.gz      the first 5,000 training images and labels
  static/data/test-1000-*-idx*-ubyte.gz       the first 1,000 test images and labels

Deterministic (gzip mtime 0); rerun only to change what is bundled: python3 web/tools/make_data.py
"""
import gzip, json, os, struct, sys, zlib

SRC = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "static")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(name):
    with gzip.open(os.path.join(SRC, name)) as f:
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


def main():
    os.makedirs(os.path.join(OUT, "data"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "samples"), exist_ok=True)
    (n, h, w), images = read_idx("train-images-idx3-ubyte.gz")
    (_,), labels = read_idx("train-labels-idx1-ubyte.gz")
    k = 5000
    write_idx_gz(os.path.join(OUT, "data", "train-5000-images-idx3-ubyte.gz"), (k, h, w), images[: k * h * w])
    write_idx_gz(os.path.join(OUT, "data", "train-5000-labels-idx1-ubyte.gz"), (k,), labels[:k])
    (n, h, w), images = read_idx("t10k-images-idx3-ubyte.gz")
    (_,), labels = read_idx("t10k-labels-idx1-ubyte.gz")
    k = 1000
    write_idx_gz(os.path.join(OUT, "data", "test-1000-images-idx3-ubyte.gz"), (k, h, w), images[: k * h * w])
    write_idx_gz(os.path.join(OUT, "data", "test-1000-labels-idx1-ubyte.gz"), (k,), labels[:k])
    samples, seen = [], [0] * 10
    for i in range(n):
        c = labels[i]
        if seen[c] == 10:
            continue
        seen[c] += 1
        slug = CLASSES[c].lower().replace("/", "-").replace(" ", "-")
        name = f"{c}{seen[c] - 1}-{slug}.png"
        with open(os.path.join(OUT, "samples", name), "wb") as f:
            f.write(png_gray(w, h, images[i * h * w : (i + 1) * h * w]))
        samples.append({"file": name, "label": c, "class": CLASSES[c], "test_index": i})
        if sum(seen) == 100:
            break
    samples.sort(key=lambda s: s["file"])
    with open(os.path.join(OUT, "samples", "samples.json"), "w") as f:
        json.dump(samples, f, indent=1)
        f.write("\n")


main()
