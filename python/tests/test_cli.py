"""The CLI and Python give the same results: the same weights for the same seed and data, the same
evaluations and predictions, and each reads the other's model files and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn

from conftest import assert_same_state, metrics_epochs, run_cli, write_idx


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory, fashion_train, fashion_test):  # type: ignore[no-untyped-def]
    """The first 1,000 training and 300 test images, as arrays and as an IDX folder for the CLI."""
    (x, y), (xt, yt) = fashion_train, fashion_test
    x, y, xt, yt = x[:1000], y[:1000], xt[:300], yt[:300]
    folder = write_idx(tmp_path_factory.mktemp("data") / "fashion-mnist", x, y, xt, yt)
    return x, y, xt, yt, folder


@pytest.mark.parametrize(
    "preset, epochs, extra",
    [("mlp-dropout-l2", 2, []), ("cnn-fast", 1, ["--batch-size", "100"])],
)
def test_same_weights_and_metrics_as_the_cli(small_set, tmp_path: Path, preset: str, epochs: int, extra: list) -> None:  # type: ignore[no-untyped-def]
    x, y, xt, yt, folder = small_set
    out, metrics = tmp_path / "cli.safetensors", tmp_path / "cli.jsonl"
    run_cli(
        "train", "--model", preset, "--seed", "7", "--epochs", str(epochs), "--dataset", "fashion-mnist",
        "--data-dir", str(folder), "--out", str(out), "--metrics", str(metrics), "--quiet", *extra,
    )
    net = sn.Model.preset(preset, seed=7)
    batch = int(extra[1]) if extra else None
    history = net.fit(x, y, epochs=epochs, batch_size=batch, test_data=(xt, yt), verbose=0, threads=1)
    cli = sn.load(out)
    assert_same_state(cli.state_dict(), net.state_dict())
    ours = [{k: v for k, v in e.items() if v is not None} for e in history]
    for a, b in zip(metrics_epochs(metrics), ours):
        for k in ("epoch", "lr", "train_loss", "train_accuracy", "test_accuracy"):
            assert a[k] == pytest.approx(b[k], rel=1e-12, abs=0), k
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-9)
    assert len(history) == epochs
    assert cli.training is not None and cli.training["epochs"] == epochs == net.epoch


def test_python_model_evaluates_and_predicts_the_same_in_the_cli(small_set, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x, y, xt, yt, folder = small_set
    net = sn.Model.preset("mlp", seed=1)
    net.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "py.safetensors"
    net.save(path)
    ev = net.evaluate(xt, yt)
    r = json.loads(run_cli("evaluate", "--model", str(path), "--dataset", "fashion-mnist", "--data-dir",
                           str(folder), "--json").stdout)
    assert r["examples"] == len(yt)
    assert r["accuracy"] == ev.accuracy
    assert r["loss"] == pytest.approx(ev.loss, rel=1e-9)
    np.testing.assert_array_equal(np.array(r["confusion"]), ev.confusion)

    # `predict --raw` on PGM files of the same pixels.
    files = []
    for i in range(8):
        f = tmp_path / f"{i}.pgm"
        f.write_bytes(b"P5 28 28 255\n" + xt[i].tobytes())
        files.append(str(f))
    out = run_cli("predict", "--model", str(path), "--raw", "--json", "--top-k", "10", *files).stdout
    cli_probs = np.zeros((8, 10))
    for i, line in enumerate(out.splitlines()):
        for t in json.loads(line)["top"]:
            cli_probs[i, t["index"]] = t["probability"]
    np.testing.assert_allclose(net.predict_proba(xt[:8]), cli_probs, atol=1e-6, rtol=0)


def test_cli_model_predicts_the_same_in_python(small_set, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x, y, xt, yt, folder = small_set
    out = tmp_path / "cli.safetensors"
    run_cli("train", "--model", "mlp", "--epochs", "1", "--dataset", "fashion-mnist", "--data-dir", str(folder),
            "--out", str(out), "--quiet")
    net = sn.load(out)
    r = json.loads(run_cli("evaluate", "--model", str(out), "--dataset", "fashion-mnist", "--data-dir", str(folder),
                           "--json").stdout)
    ev = net.evaluate(xt, yt)
    assert (ev.accuracy, ev.confusion.tolist()) == (r["accuracy"], r["confusion"])
    # The built-in model: the CLI without --model, Python's builtin().
    r = json.loads(run_cli("evaluate", "--dataset", "fashion-mnist", "--data-dir", str(folder), "--json").stdout)
    ev = sn.builtin().evaluate(xt, yt)
    assert (ev.accuracy, ev.confusion.tolist()) == (r["accuracy"], r["confusion"])
    assert ev.loss == pytest.approx(r["loss"], rel=1e-9)


def test_cli_resumes_a_python_checkpoint_to_the_same_weights(small_set, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x, y, xt, yt, folder = small_set
    ckpt = tmp_path / "run.ckpt.safetensors"
    net = sn.Model.preset("mlp-dropout", seed=3)
    net.fit(x, y, epochs=1, test_data=(xt, yt), verbose=0, checkpoint=ckpt)
    assert sn.load(ckpt).epoch == 1
    out = tmp_path / "resumed.safetensors"
    run_cli("train", "--resume", str(ckpt), "--epochs", "2", "--dataset", "fashion-mnist", "--data-dir", str(folder),
            "--out", str(out), "--quiet")
    net.fit(x, y, epochs=2, test_data=(xt, yt), verbose=0, checkpoint=ckpt)
    assert sn.load(ckpt).epoch == 2
    assert_same_state(sn.load(out).state_dict(), net.state_dict())

    # And Python continues a CLI checkpoint to the weights of the CLI's uninterrupted run.
    whole, first = tmp_path / "whole.safetensors", tmp_path / "first.safetensors"
    common = ["--model", "mlp-dropout", "--seed", "3", "--dataset", "fashion-mnist", "--data-dir", str(folder), "--quiet"]
    run_cli("train", *common, "--epochs", "2", "--out", str(whole))
    run_cli("train", *common, "--epochs", "1", "--checkpoint-every", "1", "--out", str(first))
    resumed = sn.load(tmp_path / "first.ckpt.safetensors")
    assert resumed.epoch == 1
    resumed.fit(x, y, epochs=2, verbose=0)
    assert_same_state(resumed.state_dict(), sn.load(whole).state_dict())
    assert_same_state(resumed.state_dict(), net.state_dict())
