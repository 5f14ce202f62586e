"""MNIST and Fashion-MNIST as NumPy arrays, found where the `scratchnet` CLI finds them.

A name ("fashion-mnist", "mnist") is looked up in, in order: `data_dir`, `$SCRATCHNET_DATA/<name>`,
`./data/<name>`, `/usr/share/datasets/<name>` (Debian's `dataset-fashion-mnist` package), in IDX
(raw or .gz) or Kaggle CSV layout. Anything else is taken as a folder whose dataset must be told
from its files. Get the data with `scratchnet download fashion-mnist` (or `mnist`).
"""

from __future__ import annotations

import os
from typing import List, Optional, Tuple, Union

import numpy as np

from . import _native

__all__ = ["load", "classes"]


def load(
    name: str = "fashion-mnist",
    split: str = "train",
    *,
    data_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """One split ("train": 60,000 images, "test": 10,000) of a dataset: images uint8 [N, 28, 28]
    (pixels 0-255, light on dark) and labels uint8 [N]. Raises ValueError saying where it looked,
    and how to get the data, when it is not found."""
    d = None if data_dir is None else os.fspath(data_dir)
    x, y, _classes, _kind, _origin = _native.load_dataset(name, split, d)
    return x, y


def classes(name: str = "fashion-mnist") -> List[str]:
    """The class names of "fashion-mnist" or "mnist", in label order."""
    return list(_native.dataset_classes(name))
