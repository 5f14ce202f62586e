"""Construction, files and weights: round trips, PyTorch's state_dict layout, ONNX, datasets, and a
short training run on real Fashion-MNIST."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn

from conftest import REPO, assert_same_state


def pytorch_layout():  # type: ignore[no-untyped-def]
    """tests/pytorch_layout.py: PyTorch's layer definitions in NumPy (the Rust interop tests' reference)."""
    spec = importlib.util.spec_from_file_location("pytorch_layout", REPO / "tests" / "pytorch_layout.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_reaches_a_floor_on_fashion_mnist(fashion_train, fashion_test) -> None:  # type: ignore[no-untyped-def]
    (x, y), (xt, yt) = fashion_train, fashion_test
    net = sn.Model.preset("mlp-dropout-l2", seed=0)
    start = time.perf_counter()
    history = net.fit(x[:20000], y[:20000], epochs=2, test_data=(xt, yt), verbose=0)
    assert time.perf_counter() - start < 30
    assert [e["epoch"] for e in history] == [1, 2]
    assert set(history.history) >= {"train_loss", "train_accuracy", "test_accuracy", "test_loss", "lr"}
    ev = net.evaluate(xt, yt)
    assert ev.accuracy > 0.80, ev
    assert ev.accuracy == history[-1]["test_accuracy"]
    assert ev.confusion.shape == (10, 10) and ev.confusion.sum() == 10000 and ev.per_class.shape == (10,)
    assert (net.predict(xt) == yt).mean() == ev.accuracy


def test_save_load_and_bytes_round_trip(fashion_test, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x, y = fashion_test
    net = sn.Model.preset("cnn-fast", seed=4)
    net.fit(x[:256], y[:256], epochs=1, batch_size=64, verbose=0)
    net.tta = "hflip"
    path = tmp_path / "m.safetensors"
    net.save(path)
    for other in (sn.load(path), sn.Model(sn._native.Model.from_bytes(net.to_bytes())), net.copy()):
        assert_same_state(other.state_dict(), net.state_dict())
        np.testing.assert_array_equal(other.predict_proba(x[:32]), net.predict_proba(x[:32]))
        assert (other.tta, other.classes, other.spec, other.dataset) == (net.tta, net.classes, net.spec, net.dataset)
    # What PyTorch's loader sees (`safetensors.torch.load_file`): the state_dict, by name.
    from safetensors.numpy import load_file

    assert_same_state(dict(sorted(load_file(str(path)).items())), dict(sorted(net.state_dict().items())))
    record = sn.load(path).training
    assert record is not None and record["epochs"] == 1 and record["preset"] == "cnn-fast"
    assert "Python" in record["command"]
    # state_dict round trip into a fresh network of the same spec.
    fresh = sn.Model.from_spec(net.spec, seed=9)
    assert not np.array_equal(fresh.predict_proba(x[:8]), net.predict_proba(x[:8], tta="none"))
    fresh.load_state_dict(net.state_dict())
    np.testing.assert_array_equal(fresh.predict_proba(x[:8]), net.predict_proba(x[:8], tta="none"))
    with pytest.raises(KeyError, match="layers.0.weight"):
        fresh.load_state_dict({})
    bad = net.state_dict()
    bad["layers.0.weight"] = bad["layers.0.weight"][:1]
    with pytest.raises(ValueError, match=r'state_dict\["layers.0.weight"\]: shape'):
        fresh.load_state_dict(bad)


@pytest.mark.parametrize("which", ["mlp", "cnn-fast", "builtin"])
def test_state_dict_follows_pytorch(fashion_test, which: str) -> None:  # type: ignore[no-untyped-def]
    x, y = fashion_test
    if which == "builtin":
        net = sn.builtin()
    else:
        net = sn.Model.preset(which, seed=1)
        net.fit(x[:512], y[:512], epochs=1, batch_size=64, verbose=0)  # running statistics move off 0/1
    sd = net.state_dict()
    for name, v in sd.items():
        assert name.startswith("layers."), name
        if name.endswith("num_batches_tracked"):
            assert v.dtype == np.int64 and v.shape == (), name
        else:
            assert v.dtype == np.float32, name
    for i, layer in enumerate(net.spec["layers"]):
        if layer["type"] == "linear":
            assert sd[f"layers.{i}.weight"].shape == (layer["out_features"], layer["in_features"])
        if layer["type"] == "conv2d":
            k = layer["kernel_size"]
            assert sd[f"layers.{i}.weight"].shape == (layer["out_channels"], layer["in_channels"], k, k)
    ref = pytorch_layout()
    ref.check_counters(sd)
    norm = net.input_norm
    inputs = x[:16, None].astype(np.float64) * norm["scale"] + norm["offset"]
    logits = ref.forward(net.spec, inputs, {k: v.astype(np.float64) for k, v in sd.items()})
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(net.predict_proba(x[:16], tta="none"), p, atol=1e-4)


def test_onnx_export_matches(fashion_test, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ort = pytest.importorskip("onnxruntime")
    x, _ = fashion_test
    net = sn.builtin("mnist")
    path = tmp_path / "m.onnx"
    net.export_onnx(path, softmax=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"pixels": x[:8, None].astype(np.float32)})
    np.testing.assert_allclose(out, net.predict_proba(x[:8], tta="none"), atol=1e-5)
    with pytest.raises(ValueError, match="needs softmax=True"):
        net.export_onnx(tmp_path / "n.onnx", tta="hflip")


def test_construction_and_what_a_model_says(tmp_path: Path) -> None:
    assert set(sn.presets()) == {
        "mlp-sgd", "mlp-sgd-momentum", "mlp", "mlp-dropout", "mlp-dropout-l2", "cnn", "cnn-plus", "cnn-fast",
        "cnn-best",
    }
    net = sn.Model.preset("cnn-fast", seed=3, config={"epochs": 4, "batch_size": 32})
    assert (net.config["epochs"], net.config["batch_size"], net.config["seed"]) == (4, 32, 3)
    assert net.config["augment"]["hflip"] is True
    assert sn.Model.preset("cnn-fast", dataset="mnist").config["augment"]["hflip"] is False
    assert sn.Model.preset("mlp", dataset="mnist").classes == [str(i) for i in range(10)]
    assert net.classes[0] == "T-shirt/top" and net.input_shape == (1, 28, 28) and net.epoch == 0
    assert "cnn-fast" in repr(net) and net.device == "cpu" and net.num_params > 100_000
    with pytest.raises(ValueError, match='unknown preset "mpl"; the presets are mlp-sgd'):
        sn.Model.preset("mpl")
    with pytest.raises(ValueError, match='config has no setting "epoch"'):
        sn.Model.preset("mlp", config={"epoch": 3})
    spec = {"input": [1, 28, 28], "layers": [{"type": "flatten"}, {"type": "linear", "in_features": 784,
                                                                     "out_features": 3}]}
    small = sn.Model.from_spec(spec, classes=["a", "b", "c"])
    assert small.classes == ["a", "b", "c"] and small.config["batch_size"] == 64
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert sn.Model.from_spec(tmp_path / "spec.json").classes == ["0", "1", "2"]
    with pytest.raises(ValueError, match="add a flatten layer"):
        sn.Model.from_spec({"input": [1, 28, 28], "layers": [{"type": "linear", "in_features": 784, "out_features": 3}]})
    with pytest.raises(ValueError, match="classes: 2 names for a network with 3 outputs"):
        sn.Model.from_spec(spec, classes=["a", "b"])
    with pytest.raises(FileNotFoundError):
        sn.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.safetensors"):
        sn.load(tmp_path / "junk.safetensors")
    digits = sn.builtin("mnist")
    assert digits.dataset == "mnist" and digits.training is not None
    with pytest.raises(ValueError, match="'fashion-mnist' or 'mnist'"):
        sn.builtin("cifar")


def test_datasets(tmp_path: Path, fashion_test) -> None:  # type: ignore[no-untyped-def]
    x, y = fashion_test
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and y.shape == (10000,) and y.dtype == np.uint8
    assert y[:5].tolist() == [9, 2, 1, 1, 6]
    assert sn.datasets.classes("mnist")[3] == "3" and sn.datasets.classes()[9] == "Ankle boot"
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        sn.datasets.load("fashion-mnist", split="validation")
    with pytest.raises(ValueError, match="neither a known dataset"):
        sn.datasets.load(str(tmp_path / "nowhere"))


def test_epochs_is_the_runs_total(fashion_test) -> None:  # type: ignore[no-untyped-def]
    x, y = fashion_test
    net = sn.Model.preset("mlp", seed=0)
    assert len(net.fit(x[:500], y[:500], epochs=2, verbose=0)) == 2
    assert len(net.fit(x[:500], y[:500], epochs=3, verbose=0)) == 1
    assert len(net.fit(x[:500], y[:500], epochs=3, verbose=0)) == 0
    with pytest.raises(ValueError, match="already trained 3 epochs"):
        net.fit(x[:500], y[:500], epochs=2, verbose=0)
    assert [e["epoch"] for e in net.history] == [1, 2, 3]


def test_progress_output(fashion_test, capsys) -> None:  # type: ignore[no-untyped-def]
    x, y = fashion_test
    net = sn.Model.preset("mlp-sgd", seed=0)
    net.fit(x[:3000], y[:3000], epochs=1, verbose=1, validation_data=(x[3000:4000], y[3000:4000]))
    out = capsys.readouterr()
    assert out.out.startswith("epoch   1/1  lr 0.001000  loss ") and "val " in out.out and "test -" in out.out
    net.fit(x[:3000], y[:3000], epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_plain_progress_bar_without_tqdm(fashion_test, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from scratchnet import _progress

    monkeypatch.setattr(_progress, "_tqdm", lambda: None)
    x, y = fashion_test
    sn.Model.preset("mlp-sgd", seed=0).fit(x[:3000], y[:3000], epochs=1, verbose=1)
    err = capsys.readouterr().err
    assert "epoch 1/1 [" in err and "/3000 batches, loss " in err and " acc " in err, err
