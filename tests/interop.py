"""The other side of tests/interop.rs: what PyTorch users and ONNX Runtime see.

  python3 interop.py onnx MODEL.onnx IMAGES.u8 N PREDICT.jsonl OUTPUT
      onnx.checker (full check, with shape inference) passes; the graph has input 'pixels'
      [batch, c, h, w] with a free batch dimension and the output OUTPUT; ONNX Runtime's outputs
      on the N images (raw 0-255 pixels; softmax taken of 'logits') equal the probabilities `scratchnet predict --json
      --top-k <all>` printed for files img_<i>.pgm, within 1e-5, run as one batch and as batches
      of 1 and 7. Prints the largest difference.

  python3 interop.py reference MODEL.safetensors IMAGES.u8 N PREDICT.jsonl
      Recomputes a scratchnet model file's network in NumPy (tests/pytorch_layout.py: PyTorch's
      layer definitions, batch norms in eval mode from the file's running statistics) on the N
      images normalised as the file's metadata says, and checks the probabilities `scratchnet
      predict --json` printed, within 1e-5; batch norms' step counters must be int64 of shape ().

  python3 interop.py torch-weights SPEC.json PREFIX WEIGHTS.safetensors IMAGES.u8 N MEAN STD PROBS.f32
      Writes random weights for the spec in PyTorch's state_dict layout (Conv2d [out, in, k, k],
      Linear [out, in]) named PREFIX<i>.weight (PREFIX '' is nn.Sequential's own numbering), with
      NumPy only, and the probabilities PyTorch's layer definitions give on the N images normalised
      as torchvision's Normalize(MEAN, STD) after ToTensor (the NumPy reference of
      tests/pytorch_layout.py), as little-endian f32.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_layout import check_counters, forward  # noqa: E402

TOLERANCE = 1e-5


def read_predictions(predict_jsonl, classes):
    """The image indices (files img_<i>.pgm) and probabilities `scratchnet predict --json` printed."""
    expected = {}
    with open(predict_jsonl) as f:
        for line in f:
            rec = json.loads(line)
            i = int(os.path.basename(rec["file"])[len("img_"):-len(".pgm")])
            p = np.zeros(len(classes))
            for t in rec["top"]:
                assert classes[t["index"]] == t["class"]
                p[t["index"]] = t["probability"]
            assert len(rec["top"]) == len(classes), "predict must print every class (--top-k)"
            expected[i] = p
    assert len(expected) >= 95, f"only {len(expected)} predictions to compare"
    rows = sorted(expected)
    return rows, np.stack([expected[i] for i in rows])


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def reference(model_path, images, n, predict_jsonl):
    from safetensors import safe_open

    with safe_open(model_path, framework="numpy") as f:
        meta = f.metadata()
        raw = {k: f.get_tensor(k) for k in f.keys()}
    check_counters(raw)
    spec, norm, classes = json.loads(meta["spec"]), json.loads(meta["input"]), json.loads(meta["classes"])
    pixels = np.fromfile(images, dtype=np.uint8)[:n * int(np.prod(spec["input"]))].astype(np.float64)
    x = (pixels * norm["scale"] + norm["offset"]).reshape([n] + spec["input"])
    p = softmax(forward(spec, x, {k: v.astype(np.float64) for k, v in raw.items()}))
    rows, want = read_predictions(predict_jsonl, classes)
    err = np.abs(p[rows] - want).max()
    assert err <= TOLERANCE, f"NumPy reference vs scratchnet predict: max |difference| {err:.3g}"
    counters = {k: int(v) for k, v in raw.items() if k.endswith("num_batches_tracked")}
    print(f"OK: {len(rows)} images, max |difference| {err:.2e}, {len(raw)} tensors, counters {counters}")


def onnx_check(model_path, images, n, predict_jsonl, output):
    import onnx
    import onnxruntime as ort

    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "pixels", inp.name
    assert out.name == output, (out.name, output)
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch", dims[0]
    shape = [d.dim_value for d in dims[1:]]
    assert out.type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: p.value for p in model.metadata_props}
    classes = json.loads(meta["classes"])

    x = np.fromfile(images, dtype=np.uint8).astype(np.float32).reshape([n] + shape)
    rows, want = read_predictions(predict_jsonl, classes)

    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    (raw,) = session.run([output], {"pixels": x})
    assert raw.shape == (n, len(classes)), raw.shape
    got = raw
    if output == "logits":
        z = raw.astype(np.float64) - raw.max(axis=1, keepdims=True)
        got = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    err = np.abs(got[rows] - want).max()
    for batch in (1, 7):
        for s in range(0, n, batch):
            (part,) = session.run([output], {"pixels": x[s:s + batch]})
            scale = max(1.0, float(np.abs(raw).max()))
            assert np.abs(part - raw[s:s + batch]).max() <= 1e-5 * scale, f"batch {batch} at {s}"
    assert err <= TOLERANCE, f"ONNX Runtime vs scratchnet predict: max |difference| {err:.3g}"
    agree = (got[rows].argmax(1) == want.argmax(1)).mean()
    print(f"OK: {len(rows)} images, max |difference| {err:.2e}, same top class {agree:.0%}, "
          f"onnxruntime {ort.__version__}, onnx {onnx.__version__}")


def torch_weights(spec_path, prefix, weights_path, images, n, mean, std, probs_path):
    from safetensors.numpy import save_file

    with open(spec_path) as f:
        spec = json.load(f)
    rng = np.random.default_rng(17)
    tensors = {}
    x = (np.fromfile(images, dtype=np.uint8).astype(np.float64) / 255.0 - mean) / std
    x = x.reshape([n] + spec["input"])
    for i, layer in enumerate(spec["layers"]):
        if layer["type"] == "conv2d":
            k = layer["kernel_size"]
            shape = (layer["out_channels"], layer["in_channels"], k, k)
        elif layer["type"] == "linear":
            shape = (layer["out_features"], layer["in_features"])
        else:
            continue
        fan_in = int(np.prod(shape[1:]))
        tensors[f"{prefix}{i}.weight"] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        tensors[f"{prefix}{i}.bias"] = (rng.standard_normal(shape[0]) * 0.1).astype(np.float32)
    ours = {f"layers.{k[len(prefix):]}": v.astype(np.float64) for k, v in tensors.items()}
    x = forward(spec, x, ours)
    save_file(tensors, weights_path)
    z = x - x.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    p.astype("<f4").tofile(probs_path)
    print(f"OK: {len(tensors)} tensors, {n} images")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "onnx":
        onnx_check(args[0], args[1], int(args[2]), args[3], args[4])
    elif mode == "reference":
        reference(args[0], args[1], int(args[2]), args[3])
    elif mode == "torch-weights":
        torch_weights(args[0], args[1], args[2], args[3], int(args[4]), float(args[5]), float(args[6]), args[7])
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
