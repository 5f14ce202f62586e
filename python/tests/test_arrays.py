"""Images and labels: the accepted shapes, dtypes and layouts give the same results; the usual
mistakes raise TypeError / ValueError (or warn) naming the argument and what was expected."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import scratchnet as sn


@pytest.fixture(scope="module")
def net() -> sn.Model:
    return sn.builtin()


@pytest.fixture(scope="module")
def xy(fashion_test):  # type: ignore[no-untyped-def]
    x, y = fashion_test
    return x[:64], y[:64]


def test_shapes_layouts_and_scales_agree(net: sn.Model, xy) -> None:  # type: ignore[no-untyped-def]
    x, _ = xy
    ref = net.predict_proba(x)
    assert ref.dtype == np.float32 and ref.shape == (64, 10)
    same = {
        "(N, 1, 28, 28)": x[:, None],
        "(N, 784)": x.reshape(64, 784),
        "Fortran order": np.asfortranarray(x),
        "strided": np.repeat(x, 2, axis=0)[::2],
        "transposed twice": x.transpose(0, 2, 1).copy().transpose(0, 2, 1),
        "int64": x.astype(np.int64),
        "0-1 float32 (x / 255)": x.astype(np.float32) / 255,
        "0-1 float64 (x / 255)": x / 255.0,
        "0-255 float32, pixel_max=255": x.astype(np.float32),
    }
    for what, arr in same.items():
        kw = {"pixel_max": 255} if "pixel_max" in what else {}
        np.testing.assert_array_equal(net.predict_proba(arr, **kw), ref, err_msg=what)
    assert not x[:, :, ::-1].flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(net.predict_proba(x[:, :, ::-1]), net.predict_proba(x[:, :, ::-1].copy()))
    # Floats between pixel levels are used as they are: close to, not equal to, the rounded ones.
    off = np.minimum(x, 250).astype(np.float32) / 255 + 0.4 / 255
    p = net.predict_proba(off)
    assert not np.array_equal(p, ref) and np.abs(p - ref).max() < 0.05


def test_evaluate_accepts_the_same_inputs(net: sn.Model, xy) -> None:  # type: ignore[no-untyped-def]
    x, y = xy
    ev = net.evaluate(x, y)
    for arr, labels in ((x / 255.0, y.astype(np.int64)), (x.reshape(64, -1), list(map(int, y)))):
        e = net.evaluate(arr, labels)
        assert (e.accuracy, e.loss) == (ev.accuracy, ev.loss)
    off = net.evaluate(np.minimum(x, 250) / 255.0 + 0.3 / 255, y)
    assert abs(off.accuracy - ev.accuracy) <= 0.05 and abs(off.loss - ev.loss) < 0.05
    assert off.confusion.sum() == 64 and off.confusion.dtype == np.int64


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (lambda x: x.astype(bool), TypeError, ["x: dtype bool", "uint8"]),
        (lambda x: x.astype(np.complex64), TypeError, ["x: dtype complex64"]),
        (lambda x: x.astype(str), TypeError, ["x: dtype <U"]),
        (lambda x: x[:, :27], ValueError, ["x: shape (64, 27, 28)", "(N, 28, 28), (N, 1, 28, 28) or (N, 784)"]),
        (lambda x: x[0], ValueError, ["x: shape (28, 28)", "x[None]"]),
        (lambda x: x[:0], ValueError, ["x: no images"]),
        (lambda x: x.astype(np.float32), ValueError, ["0-1 scale", "values up to 255", "pixel_max=255"]),
        (lambda x: x / 255.0 - 0.5, ValueError, ["negative values", "not normalised"]),
        (lambda x: np.where(x > 200, np.nan, x / 255.0), ValueError, ["NaN or infinite"]),
        (lambda x: x.astype(np.int64) * 2, ValueError, ["integer pixels must be 0-255", "from 0 to 510"]),
    ],
)
def test_bad_images_are_named(net: sn.Model, xy, bad, error, words) -> None:  # type: ignore[no-untyped-def]
    x, y = xy
    for call in (lambda a: net.predict(a), lambda a: net.evaluate(a, y), lambda a: sn.Model.preset("mlp").fit(a, y)):
        with pytest.raises(error) as e:
            call(bad(x))
        for w in words:
            assert w in str(e.value), (w, str(e.value))


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (lambda y: y.astype(np.float32), TypeError, ["y: dtype float32", "integer class labels 0-9", "astype(int)"]),
        (lambda y: np.where(np.arange(64) == 5, 10, y), ValueError, ["y: label 10 at index 5", "10 classes (0-9)"]),
        (lambda y: y.astype(np.int64) - 1, ValueError, ["y: label -1 at index"]),
        (lambda y: y[:-1], ValueError, ["y: 63 labels for 64 images"]),
        (lambda y: np.eye(10, dtype=np.int64)[y], ValueError, ["one-hot", "argmax"]),
        (lambda y: y[:, None], ValueError, ["y: shape (64, 1)", "(64,)"]),
    ],
)
def test_bad_labels_are_named(net: sn.Model, xy, bad, error, words) -> None:  # type: ignore[no-untyped-def]
    x, y = xy
    for call in (lambda b: net.evaluate(x, b), lambda b: sn.Model.preset("mlp").fit(x, b, epochs=1, verbose=0)):
        with pytest.raises(error) as e:
            call(bad(y))
        for w in words:
            assert w in str(e.value), (w, str(e.value))


def test_validation_and_test_data_are_checked_by_name(xy) -> None:  # type: ignore[no-untyped-def]
    x, y = xy
    net = sn.Model.preset("mlp")
    with pytest.raises(ValueError, match=r"validation_data\[0\]: shape"):
        net.fit(x, y, validation_data=(x[:, :20], y), verbose=0)
    with pytest.raises(ValueError, match=r"test_data\[1\]: label 12"):
        net.fit(x, y, test_data=(x, np.full(64, 12)), verbose=0)
    with pytest.raises(TypeError, match="validation_data: expected a pair"):
        net.fit(x, y, validation_data=x, verbose=0)  # type: ignore[arg-type]
    assert net.epoch == 0


def test_mixups_that_could_be_right_warn(net: sn.Model, xy) -> None:  # type: ignore[no-untyped-def]
    x, y = xy
    with pytest.warns(UserWarning, match="pixel_max=255 reads floats as 0-255.*at most 1.0"):
        net.predict(x / 255.0, pixel_max=255)
    with pytest.warns(UserWarning, match="uint8 pixels are 0-255.*0 or 1"):
        net.predict((x > 128).astype(np.uint8))
    with pytest.warns(UserWarning, match="training reads 8-bit pixels; .* rounded"):
        sn.Model.preset("mlp").fit(np.minimum(x, 250) / 255.0 + 0.2 / 255, y, epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.predict(x)
        net.predict(x / 255.0)
        net.predict(x.astype(np.float64), pixel_max=255)


def test_bad_arguments(xy) -> None:  # type: ignore[no-untyped-def]
    x, y = xy
    net = sn.Model.preset("mlp")
    for kw, words in (
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": -1}, "batch_size must be a positive integer"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"device": "tpu"}, "device must be 'cpu', 'gpu' or 'auto'"),
        ({"verbose": 5}, "verbose must be 0, 1, 2 or 'auto'"),
    ):
        with pytest.raises(ValueError, match=words):
            net.fit(x, y, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tta must be one of none, hflip"):
        net.predict(x, tta="vflip")
    with pytest.raises(ValueError, match="batch norm needs at least 2 images in every training batch"):
        sn.Model.preset("cnn-fast").fit(np.tile(x, (3, 1, 1))[:129], np.tile(y, 3)[:129], epochs=1, verbose=0)


def test_the_native_module_checks_shapes_itself(net: sn.Model, xy) -> None:  # type: ignore[no-untyped-def]
    x, y = xy
    with pytest.raises(ValueError, match="expected .N, .... with 784 values per image"):
        net._m.predict_proba_u8(x[:, :20])
    with pytest.raises(ValueError, match="images of 28x28 but 64 labels"):
        net._m.evaluate_u8(x[:, :20], y)
