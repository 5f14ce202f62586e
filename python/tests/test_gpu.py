"""device="gpu": the GPU backend from Python (in CI on Mesa's lavapipe, a Vulkan driver on the CPU).
Skipped without a GPU adapter unless SCRATCHNET_REQUIRE_GPU=1, as the Rust GPU tests are."""

from __future__ import annotations

import os

import numpy as np
import pytest

import scratchnet as sn


def test_fit_and_predict_on_the_gpu(fashion_test) -> None:  # type: ignore[no-untyped-def]
    x, y = fashion_test
    net = sn.Model.preset("mlp-dropout", seed=0)
    try:
        net.to("gpu")
    except RuntimeError as e:
        if os.environ.get("SCRATCHNET_REQUIRE_GPU") == "1":
            raise
        pytest.skip(f"no GPU adapter: {e}")
    assert net.device == "gpu"
    history = net.fit(x[:1024], y[:1024], epochs=2, device="gpu", verbose=0, test_data=(x[1024:1536], y[1024:1536]))
    assert history[-1]["test_accuracy"] > 0.5
    on_gpu = net.predict_proba(x[:64])
    ev = net.evaluate(x[1024:1536], y[1024:1536])
    assert ev.accuracy == history[-1]["test_accuracy"]
    net.to("cpu")
    assert net.device == "cpu"
    np.testing.assert_allclose(net.predict_proba(x[:64]), on_gpu, atol=1e-4)
