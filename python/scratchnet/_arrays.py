"""Checking and converting the arrays users pass: images, labels, the pixel scale of floats."""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native

# What a checked image array is handed to Rust as: uint8 pixels, or float32 values off the pixel
# levels with the factor that makes them 0-255 pixels.
Pixels = Union[Tuple[str, np.ndarray], Tuple[str, np.ndarray, float]]


def _shape_text(c: int, h: int, w: int) -> str:
    shapes = [f"(N, {c}, {h}, {w})", f"(N, {c * h * w})"]
    if c == 1:
        shapes.insert(0, f"(N, {h}, {w})")
    return ", ".join(shapes[:-1]) + " or " + shapes[-1]


def images(
    x: Any,
    input_shape: Sequence[int],
    *,
    name: str = "x",
    pixel_max: Optional[float] = None,
    for_training: bool = False,
) -> Pixels:
    """Checks `x` against a model's (c, h, w) input and returns what the native side takes:
    ("u8", uint8 array) or, for floats between pixel levels when predicting, ("f32", float32
    array, factor to 0-255). Raises TypeError / ValueError naming `name`."""
    c, h, w = (int(v) for v in input_shape)
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{name}: expected a NumPy array of images, got {type(x).__name__} ({e})") from None
    kind = x.dtype.kind
    if kind not in "uif":
        raise TypeError(
            f"{name}: dtype {x.dtype}; expected uint8 pixels (0-255) or float pixels "
            f"(0-1, as x / 255 and torchvision's ToTensor give; 0-255 with pixel_max=255)"
        )
    shape = tuple(x.shape)
    ok = (
        (x.ndim == 4 and shape[1:] == (c, h, w))
        or (x.ndim == 3 and c == 1 and shape[1:] == (h, w))
        or (x.ndim == 2 and shape[1] == c * h * w)
    )
    if not ok:
        hint = ""
        if shape in ((h, w), (c, h, w), (c * h * w,)):
            hint = f"; for one image pass {name}[None]"
        raise ValueError(
            f"{name}: shape {shape}; expected {_shape_text(c, h, w)} for this model's {c}x{h}x{w} input{hint}"
        )
    if shape[0] == 0:
        raise ValueError(f"{name}: no images (shape {shape})")

    if kind in "ui":
        if x.dtype != np.uint8:
            least, most = int(x.min()), int(x.max())
            if least < 0 or most > 255:
                raise ValueError(
                    f"{name}: integer pixels must be 0-255 (uint8), but {name} holds values from {least} to {most}"
                )
            x = x.astype(np.uint8)
        elif x.size and int(x.max()) <= 1:
            warnings.warn(
                f"{name}: uint8 pixels are 0-255 (white is 255) but every value of {name} is 0 or 1: "
                f"to the model these images are black. Multiply by 255 if 1 means white.",
                UserWarning,
                stacklevel=3,
            )
        return ("u8", x)

    scale_max = 1.0 if pixel_max is None else float(pixel_max)
    if not scale_max > 0:
        raise ValueError(f"pixel_max must be positive (1.0 for 0-1 floats, 255 for 0-255), not {pixel_max}")
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    factor = 255.0 / scale_max
    levels, bad, lo, hi, off = _native.quantize(x, factor)
    if bad:
        raise ValueError(f"{name}: holds {bad} NaN or infinite values; pixels must be finite")
    tol = 1e-3
    if lo < -tol:
        raise ValueError(
            f"{name}: holds negative values (down to {lo / factor:g}); scratchnet takes pixels, not normalised "
            f"inputs (each model applies its own normalisation): 0-1 floats, 0-255 floats with pixel_max=255, "
            f"or uint8"
        )
    if hi > 255 + tol:
        if pixel_max is None or scale_max == 1.0:
            raise ValueError(
                f"{name}: float pixels are read on the 0-1 scale (white is 1.0, as x / 255 and torchvision's "
                f"ToTensor give), but {name} holds values up to {hi / factor:g}: pass the uint8 pixels, "
                f"{name} / 255, or pixel_max=255 for 0-255 floats"
            )
        raise ValueError(f"{name}: values up to {hi / factor:g} with pixel_max={pixel_max}: pixels end at white")
    if scale_max > 1.0 + tol and 0 < hi / factor <= 1.0:
        warnings.warn(
            f"{name}: pixel_max={pixel_max:g} reads floats as 0-{pixel_max:g} pixel values, but every value of "
            f"{name} is at most 1.0, as 0-1 pixels are: to the model these images are nearly black. "
            f"Leave pixel_max out if {name} is on the 0-1 scale.",
            UserWarning,
            stacklevel=3,
        )
    if off == 0:
        return ("u8", levels)
    if for_training:
        warnings.warn(
            f"{name}: training reads 8-bit pixels; {off} values of {name} lie between the 256 pixel levels "
            f"and were rounded to the nearest",
            UserWarning,
            stacklevel=3,
        )
        return ("u8", levels)
    return ("f32", x, factor)


def labels(y: Any, n: int, classes: int, *, name: str = "y") -> np.ndarray:
    """Checks class labels (integers 0..classes-1, one per image) and returns them as uint8."""
    if not isinstance(y, np.ndarray):
        try:
            y = np.asarray(y)
        except Exception as e:
            raise TypeError(f"{name}: expected a NumPy array of class labels, got {type(y).__name__} ({e})") from None
    if y.ndim == 2 and y.shape[1] == classes and y.shape[0] == n:
        raise ValueError(f"{name}: shape {y.shape} looks one-hot; pass class indices: {name}.argmax(axis=1)")
    if y.dtype.kind not in "ui":
        raise TypeError(
            f"{name}: dtype {y.dtype}; expected integer class labels 0-{classes - 1}"
            + (f" (convert with {name}.astype(int))" if y.dtype.kind == "f" else "")
        )
    if y.ndim != 1:
        raise ValueError(f"{name}: shape {y.shape}; expected one label per image, shape ({n},)")
    if len(y) != n:
        raise ValueError(f"{name}: {len(y)} labels for {n} images")
    if n:
        bad = np.flatnonzero((y < 0) | (y >= classes))
        if len(bad):
            i = int(bad[0])
            raise ValueError(
                f"{name}: label {y[i]} at index {i} is outside the model's {classes} classes (0-{classes - 1})"
                + (f" ({len(bad) - 1} more labels are)" if len(bad) > 1 else "")
            )
    out: np.ndarray = y.astype(np.uint8, copy=False)
    return out
