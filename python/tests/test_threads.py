"""The GIL is released while Rust works; Ctrl-C stops fit promptly and leaves a usable model that
continues to the weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn

from conftest import assert_same_state


def interrupt_after(seconds: float) -> threading.Timer:
    """SIGINT to this process after `seconds`, as Ctrl-C in a terminal or Jupyter's interrupt sends."""
    t = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    t.start()
    return t


def test_a_python_thread_runs_while_fit_trains(fashion_train) -> None:  # type: ignore[no-untyped-def]
    x, y = fashion_train
    count, done = [0], threading.Event()

    def spin() -> None:
        while not done.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    net = sn.Model.preset("mlp", seed=0)
    start = time.perf_counter()
    try:
        net.fit(x[:20000], y[:20000], epochs=2, verbose=0)
    finally:
        done.set()
        t.join()
    seconds = time.perf_counter() - start
    # Pure-Python loop iterations: millions a second with the GIL free; a few per 100 ms poll if not.
    assert count[0] > 200_000 * seconds, (count[0], seconds)


def test_the_model_is_busy_for_other_threads_during_fit(fashion_train) -> None:  # type: ignore[no-untyped-def]
    x, y = fashion_train
    net = sn.Model.preset("mlp", seed=0)
    errors: list = []
    first_epoch = threading.Event()

    def other() -> None:
        first_epoch.wait()
        try:
            net.predict(x[:10])
        except RuntimeError as e:
            errors.append(str(e))

    t = threading.Thread(target=other)
    t.start()
    net.fit(x, y, epochs=3, verbose=0, on_epoch=lambda s: first_epoch.set())
    t.join()
    assert errors and "busy" in errors[0]
    assert net.predict(x[:10]).shape == (10,)


def test_ctrl_c_stops_fit_promptly_and_the_run_continues_exactly(fashion_train, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x, y = fashion_train
    ckpt = tmp_path / "run.ckpt.safetensors"
    net = sn.Model.preset("mlp-sgd", seed=2)  # per-sample SGD: 60,000 steps an epoch, about 1 s
    timer = interrupt_after(0.5)
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        net.fit(x, y, epochs=3, verbose=0, checkpoint=ckpt)
    stopped = time.perf_counter() - start
    timer.join()
    assert stopped < 1.5, f"fit took {stopped:.2f} s to stop after Ctrl-C at 0.5 s"
    info = net._info()
    assert info["epoch"] < 3 and (info["epoch"], info["batch"]) != (0, 0), info
    # Usable: finite predictions, saved and loaded.
    p = net.predict_proba(x[:100])
    assert np.isfinite(p).all() and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    # The checkpoint holds the run as it stopped; continuing either gives the uninterrupted weights.
    from_ckpt = sn.load(ckpt)
    assert (from_ckpt._info()["epoch"], from_ckpt._info()["batch"]) == (info["epoch"], info["batch"])
    net.fit(x, y, epochs=3, verbose=0)
    whole = sn.Model.preset("mlp-sgd", seed=2)
    whole.fit(x, y, epochs=3, verbose=0)
    assert_same_state(net.state_dict(), whole.state_dict())
    assert [e["train_loss"] for e in net.history] == [e["train_loss"] for e in whole.history]
    resumed = sn.Model.preset("mlp-sgd", seed=2)
    resumed.fit(x, y, epochs=3, verbose=0, checkpoint=ckpt, resume=True)
    assert_same_state(resumed.state_dict(), whole.state_dict())


def test_an_interrupted_epoch_refuses_other_data(fashion_train, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x, y = fashion_train
    net = sn.Model.preset("mlp-sgd", seed=0)
    timer = interrupt_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        net.fit(x[:20000], y[:20000], epochs=20, verbose=0)
    timer.join()
    assert net._info()["batch"] > 0
    with pytest.raises(ValueError, match="interrupted epoch"):
        net.fit(x[20000:40000], y[20000:40000], epochs=20, verbose=0)
    # Also from a checkpoint written inside the epoch.
    ckpt = tmp_path / "mid.ckpt.safetensors"
    net.save_checkpoint(ckpt)
    with pytest.raises(ValueError, match="interrupted epoch"):
        sn.load(ckpt).fit(x[20000:40000], y[20000:40000], epochs=20, verbose=0)
    resumed = sn.load(ckpt)
    resumed.fit(x[:20000], y[:20000], epochs=resumed.epoch + 1, verbose=0)


def test_ctrl_c_stops_predict(fashion_train) -> None:  # type: ignore[no-untyped-def]
    x, _ = fashion_train
    net = sn.builtin()
    timer = interrupt_after(0.3)
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        net.predict(x)  # the CNN on 60,000 images: about a minute
    timer.join()
    assert time.perf_counter() - start < 2.0


def test_a_callback_can_stop_training_and_its_errors_propagate(fashion_train) -> None:  # type: ignore[no-untyped-def]
    x, y = fashion_train
    net = sn.Model.preset("mlp", seed=0)
    seen: list = []
    h = net.fit(x[:2000], y[:2000], epochs=5, verbose=0, on_epoch=lambda s: seen.append(s["epoch"]) or len(seen) < 2)
    assert seen == [1, 2] and len(h) == 2 and net.epoch == 2

    def boom(_: dict) -> None:
        raise ZeroDivisionError("from the callback")

    with pytest.raises(ZeroDivisionError, match="from the callback"):
        net.fit(x[:2000], y[:2000], epochs=4, verbose=0, callbacks=[boom])
    assert net.epoch == 3
