"""The Model class: a scratchnet network and its training run, driven with NumPy arrays."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _arrays, _native, _progress

PathLike = Union[str, "os.PathLike[str]"]
ArrayPair = Tuple[Any, Any]
EpochCallback = Callable[[Dict[str, Any]], Optional[bool]]

METRICS = (
    "epoch",
    "lr",
    "train_loss",
    "train_accuracy",
    "test_accuracy",
    "test_loss",
    "validation_accuracy",
    "validation_loss",
    "seconds",
    "images_per_second",
)


class History(List[Dict[str, Any]]):
    """What `Model.fit` returns: one dict per epoch finished by the call, with the metrics the CLI
    records (`scratchnet train --metrics`): epoch (1-based), lr, train_loss, train_accuracy (running,
    over the epoch's batches), test_accuracy / test_loss (with `test_data`), validation_accuracy /
    validation_loss (with `validation_data`), seconds (the training pass alone), images_per_second.
    Metrics not measured are None. `history.history` is the Keras view: metric -> list per epoch."""

    @property
    def history(self) -> Dict[str, List[Any]]:
        return {k: [e.get(k) for e in self] for k in METRICS}


@dataclass
class Evaluation:
    """What `Model.evaluate` returns. accuracy: fraction correct; loss: mean cross-entropy;
    per_class: accuracy of each true class (float64, [classes]); confusion: counts
    confusion[true, predicted] (int64, [classes, classes]); classes: their names."""

    accuracy: float
    loss: float
    per_class: np.ndarray = field(repr=False)
    confusion: np.ndarray = field(repr=False)
    classes: List[str] = field(repr=False, default_factory=list)


def _spec_json(spec: Union[Dict[str, Any], str, "os.PathLike[str]"]) -> str:
    if isinstance(spec, dict):
        return json.dumps(spec)
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and not spec.lstrip().startswith("{")):
        with open(spec, encoding="utf-8") as f:
            return f.read()
    if isinstance(spec, str):
        return spec
    raise TypeError(f"spec: expected a dict, JSON text or a spec.json path, got {type(spec).__name__}")


def _config_json(config: Optional[Dict[str, Any]]) -> Optional[str]:
    if config is None:
        return None
    if not isinstance(config, dict):
        raise TypeError(f"config: expected a dict of recipe settings, got {type(config).__name__}")
    return json.dumps(config)


class Model:
    """A scratchnet network with its training run: weights, recipe (`config`), optimizer state and
    per-epoch history. Make one with `Model.preset`, `Model.from_spec`, `scratchnet.load` (a model
    file or a checkpoint) or `scratchnet.builtin()`.

    Images are NumPy arrays, shaped (N, 28, 28), (N, 1, 28, 28) or (N, 784) for the 28x28 models,
    C-contiguous or not: uint8 pixels 0-255, or floats on the 0-1 scale (white = 1.0, as `x / 255`
    and torchvision's `ToTensor` give; `pixel_max=255` reads 0-255 floats). Light on dark, as the
    datasets are. Each model applies its own input normalisation (`input_norm`) to those pixels.
    """

    def __init__(self, native: _native.Model) -> None:
        if not isinstance(native, _native.Model):
            raise TypeError("use Model.preset, Model.from_spec, scratchnet.load or scratchnet.builtin")
        self._m = native

    # --- construction --------------------------------------------------------------------------

    @classmethod
    def preset(
        cls,
        name: str,
        *,
        seed: int = 0,
        dataset: str = "fashion-mnist",
        config: Optional[Dict[str, Any]] = None,
    ) -> "Model":
        """A freshly initialised preset network with its recipe (`scratchnet.presets()` lists them:
        mlp-sgd, mlp-sgd-momentum, mlp, mlp-dropout, mlp-dropout-l2, cnn, cnn-plus, cnn-fast,
        cnn-best), as `scratchnet train --model NAME --seed SEED` starts it. `dataset` names the
        classes ("fashion-mnist" or "mnist"; on "mnist" left-right flips are off, as in the CLI).
        `config` overrides recipe settings, e.g. {"epochs": 5, "batch_size": 128} (see `config`)."""
        return cls(_native.Model.preset(name, int(seed), dataset, _config_json(config)))

    @classmethod
    def from_spec(
        cls,
        spec: Union[Dict[str, Any], str, "os.PathLike[str]"],
        *,
        seed: int = 0,
        dataset: str = "fashion-mnist",
        classes: Optional[Sequence[str]] = None,
        config: Optional[Dict[str, Any]] = None,
    ) -> "Model":
        """A network from a spec: a dict, JSON text or a spec.json path in the CLI's format, e.g.
        {"input": [1, 28, 28], "layers": [{"type": "flatten"}, {"type": "linear", "in_features": 784,
        "out_features": 10}]}. The recipe is the CLI's for spec networks (10 epochs, batch 64, SGD lr
        0.01 momentum 0.9), with `config`'s settings replaced. `classes` names the outputs (default:
        the dataset's, when their number matches)."""
        names = None if classes is None else [str(c) for c in classes]
        return cls(_native.Model.from_spec(_spec_json(spec), int(seed), dataset, names, _config_json(config)))

    # --- what it is ----------------------------------------------------------------------------

    def _info(self) -> Dict[str, Any]:
        info: Dict[str, Any] = json.loads(self._m.info())
        return info

    @property
    def spec(self) -> Dict[str, Any]:
        """The network: input shape [c, h, w] and layer list (the CLI's spec.json format)."""
        spec: Dict[str, Any] = self._info()["spec"]
        return spec

    @property
    def classes(self) -> List[str]:
        """Class names, in output order."""
        classes: List[str] = self._info()["classes"]
        return classes

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """(channels, height, width) of one input image."""
        c, h, w = self._info()["spec"]["input"]
        return (int(c), int(h), int(w))

    @property
    def dataset(self) -> str:
        """The dataset the model is for ("fashion-mnist", "mnist"), as its file records."""
        return str(self._info()["dataset"])

    @property
    def input_norm(self) -> Dict[str, float]:
        """How pixels (0-255) become network inputs: pixel * scale + offset."""
        norm: Dict[str, float] = self._info()["input"]
        return norm

    @property
    def tta(self) -> str:
        """Test-time augmentation predictions use by default: "none" or "hflip" (each image averaged
        with its mirror image). Recorded in saved files."""
        return str(self._info()["tta"])

    @tta.setter
    def tta(self, value: str) -> None:
        self._m.set_tta(value)

    @property
    def config(self) -> Dict[str, Any]:
        """The training recipe (epochs, batch_size, optimizer, schedule, label_smoothing, seed,
        validation, augment, ...), as model files record it."""
        config: Dict[str, Any] = self._info()["config"]
        return config

    @property
    def epoch(self) -> int:
        """Epochs the run has finished."""
        return int(self._info()["epoch"])

    @property
    def history(self) -> History:
        """Every finished epoch of the run (across fit calls and checkpoints)."""
        return History(self._info()["history"])

    @property
    def training(self) -> Optional[Dict[str, Any]]:
        """The training record a model file keeps (preset, recipe, epochs, final accuracies, time,
        machine), or None for an untrained network."""
        record: Optional[Dict[str, Any]] = self._info()["training"]
        return record

    @property
    def num_params(self) -> int:
        return int(self._info()["num_params"])

    @property
    def device(self) -> str:
        """Where the model computes: "cpu" or "gpu"."""
        return str(self._info()["device"])

    def __repr__(self) -> str:
        i = self._info()
        name = i["preset"] or i["name"]
        return (
            f"<scratchnet.Model {name}: {i['num_params']:,} parameters, {len(i['classes'])} classes "
            f"({i['dataset'] or 'custom'}), {i['epoch']} epochs trained, on {i['device']}>"
        )

    def to(self, device: str) -> "Model":
        """Moves the model (and its optimizer state) to "cpu", "gpu" or "auto"; returns it."""
        self._m.to_device(device)
        return self

    # --- training ------------------------------------------------------------------------------

    def fit(
        self,
        x: Any,
        y: Any,
        *,
        epochs: Optional[int] = None,
        batch_size: Optional[int] = None,
        validation_data: Optional[ArrayPair] = None,
        test_data: Optional[ArrayPair] = None,
        threads: Optional[int] = None,
        device: Optional[str] = None,
        verbose: Union[int, str] = "auto",
        on_epoch: Optional[EpochCallback] = None,
        callbacks: Optional[Iterable[EpochCallback]] = None,
        checkpoint: Optional[PathLike] = None,
        checkpoint_every: int = 1,
        resume: Union[bool, PathLike] = False,
        pixel_max: Optional[float] = None,
    ) -> History:
        """Trains on images `x` and labels `y` with the model's recipe, as `scratchnet train` does,
        and returns the History of the epochs this call finished.

        epochs: train until the run has finished this many epochs (as Keras' `epochs` with
            `initial_epoch`, and the CLI's --epochs): a new model trains `epochs` epochs; a resumed
            or interrupted one continues up to it. Default: the recipe's.
        batch_size: the recipe's unless given.
        validation_data, test_data: (x, y) evaluated after every epoch, as validation_* and test_*
            metrics (the CLI evaluates its test set each epoch: pass it as test_data to match).
        threads: worker threads (default: all cores); results are the same bits for any count.
        device: "cpu", "gpu" or "auto"; the model stays there afterwards (see `to`).
        verbose: 0 silent; 1 a progress bar (tqdm if installed) and a line per epoch; 2 the lines
            only; "auto": 1 in a terminal or notebook, else 2.
        on_epoch, callbacks: called after each epoch with its metrics dict; returning False stops
            training after that epoch.
        checkpoint: a path to write a checkpoint to every `checkpoint_every` epochs and when
            interrupted (the CLI's format: `scratchnet train --resume PATH` continues it too).
        resume: True continues from `checkpoint` if that file exists (else starts afresh); a path
            continues from that checkpoint. The checkpoint's weights and run replace this model's.

        Ctrl-C (KeyboardInterrupt) stops training at the next batch boundary: the model is then as
        of its last finished batch (the optimizer state too), never half-updated; the checkpoint,
        if any, is written; and fit(...) with the same data continues the interrupted epoch to the
        same weights an uninterrupted run gets. The GIL is released while training runs.
        Training reads 8-bit pixels: uint8 x is used as is (copied once per call, never per
        epoch); float x is rounded to pixel levels (with a warning if it was not on them)."""
        if resume:
            path = checkpoint if resume is True else resume
            if path is None:
                raise ValueError("resume=True continues from checkpoint=PATH; give one (or resume=PATH)")
            if os.path.exists(path):
                self._m = _native.Model.load(os.fspath(path))
            elif resume is not True:
                raise FileNotFoundError(f"resume: {os.fspath(path)}: no such checkpoint")
        shape = self.input_shape
        k = len(self.classes)
        px = _arrays.images(x, shape, name="x", pixel_max=pixel_max, for_training=True)
        ly = _arrays.labels(y, px[1].shape[0], k, name="y")
        sets: List[Optional[Tuple[np.ndarray, np.ndarray]]] = []
        for arg, pair in (("validation_data", validation_data), ("test_data", test_data)):
            if pair is None:
                sets.append(None)
                continue
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"{arg}: expected a pair (x, y)")
            p = _arrays.images(pair[0], shape, name=f"{arg}[0]", pixel_max=pixel_max, for_training=True)
            sets.append((p[1], _arrays.labels(pair[1], p[1].shape[0], k, name=f"{arg}[1]")))
        if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
            raise ValueError(f"epochs must be a positive integer, not {epochs!r}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer, not {threads!r}")
        if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be a positive integer, not {checkpoint_every!r}")
        if verbose == "auto":
            verbose = 1 if _progress.interactive() else 2
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1, 2 or 'auto', not {verbose!r}")
        user_callbacks = list(callbacks or []) + ([on_epoch] if on_epoch is not None else [])
        total = epochs if epochs is not None else int(self.config["epochs"])
        bar = _progress.Progress("") if verbose == 1 else None
        info = self._info()
        shown = [int(info["epoch"]) + 1]

        def tick(phase: int, done: int, of: int, loss: float, accuracy: float) -> None:
            if bar is not None:
                bar.desc = f"epoch {shown[0]}/{total}"
                bar(phase, done, of, loss, accuracy)

        def epoch_end(stats_json: str) -> bool:
            stats = json.loads(stats_json)
            if bar is not None:
                bar.close()
            shown[0] = stats["epoch"] + 1
            if verbose:
                print(_progress.epoch_line(stats, total), flush=True)
            go_on = True
            for cb in user_callbacks:
                if cb(stats) is False:
                    go_on = False
            return go_on

        command = (
            f"scratchnet (Python) Model({info['preset'] or info['name']}).fit(x[{px[1].shape[0]}], "
            f"epochs={total}, batch_size={batch_size or info['config']['batch_size']})"
        )
        try:
            done = self._m.fit(
                px[1],
                ly,
                epochs,
                batch_size,
                threads,
                device,
                sets[0],
                sets[1],
                tick if bar is not None else None,
                epoch_end,
                None if checkpoint is None else os.fspath(checkpoint),
                checkpoint_every,
                command,
            )
        finally:
            if bar is not None:
                bar.close()
        return History(json.loads(done))

    # --- inference -----------------------------------------------------------------------------

    def predict_proba(
        self,
        x: Any,
        *,
        batch_size: Optional[int] = None,
        tta: Optional[str] = None,
        threads: Optional[int] = None,
        pixel_max: Optional[float] = None,
    ) -> np.ndarray:
        """Class probabilities, float32 [N, classes], of images `x` (see the class docstring for
        shapes and pixel scales). tta: "none" or "hflip" (default: the model's own, `tta`).
        uint8 input is read in place when C-contiguous; the GIL is released while it runs."""
        px = _arrays.images(x, self.input_shape, name="x", pixel_max=pixel_max)
        if px[0] == "u8":
            return self._m.predict_proba_u8(px[1], tta, batch_size, threads)
        return self._m.predict_proba_f32(px[1], px[2], tta, batch_size, threads)  # type: ignore[misc]

    def predict(
        self,
        x: Any,
        *,
        batch_size: Optional[int] = None,
        tta: Optional[str] = None,
        threads: Optional[int] = None,
        pixel_max: Optional[float] = None,
    ) -> np.ndarray:
        """The most probable class of each image, int64 [N] (ties: the lower index)."""
        p = self.predict_proba(x, batch_size=batch_size, tta=tta, threads=threads, pixel_max=pixel_max)
        labels: np.ndarray = np.argmax(p, axis=1).astype(np.int64)
        return labels

    def evaluate(
        self,
        x: Any,
        y: Any,
        *,
        batch_size: Optional[int] = None,
        tta: Optional[str] = None,
        threads: Optional[int] = None,
        pixel_max: Optional[float] = None,
        verbose: Union[int, str] = 0,
    ) -> Evaluation:
        """Accuracy, mean cross-entropy loss, per-class accuracy and the confusion matrix on
        images `x` with labels `y`, as `scratchnet evaluate` computes them."""
        px = _arrays.images(x, self.input_shape, name="x", pixel_max=pixel_max)
        classes = self.classes
        ly = _arrays.labels(y, px[1].shape[0], len(classes), name="y")
        if px[0] == "u8":
            if verbose == "auto":
                verbose = 1 if _progress.interactive() else 0
            bar = _progress.Progress("evaluate") if verbose else None
            try:
                acc, loss, per_class, confusion = self._m.evaluate_u8(px[1], ly, tta, batch_size, threads, bar)
            finally:
                if bar is not None:
                    bar.close()
            return Evaluation(acc, loss, np.asarray(per_class), confusion.astype(np.int64), classes)
        # Floats between pixel levels: from the probabilities (the loss from their logarithm).
        p = self._m.predict_proba_f32(px[1], px[2], tta, batch_size, threads)  # type: ignore[misc]
        k = len(classes)
        yi = ly.astype(np.int64)
        pred = np.argmax(p, axis=1)
        confusion = np.bincount(yi * k + pred, minlength=k * k).reshape(k, k).astype(np.int64)
        loss = float(-np.mean(np.log(np.maximum(p[np.arange(len(yi)), yi].astype(np.float64), 1e-30))))
        per_class = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
        return Evaluation(float(np.trace(confusion)) / len(yi), loss, per_class, confusion, classes)

    # --- files and weights ---------------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Writes the model file (.safetensors, PyTorch state_dict names, scratchnet metadata) that
        `scratchnet evaluate/predict/inspect/export --model PATH` and `scratchnet.load` read."""
        self._m.save(os.fspath(path))

    def save_checkpoint(self, path: PathLike) -> None:
        """Writes a checkpoint: the model file plus optimizer state and where the run stands;
        `scratchnet.load(path).fit(...)` or `scratchnet train --resume PATH` continue it exactly."""
        self._m.save_checkpoint(os.fspath(path))

    def to_bytes(self) -> bytes:
        """The model file's bytes."""
        return self._m.to_bytes()

    def export_onnx(self, path: PathLike, *, softmax: bool = False, tta: Optional[str] = None) -> None:
        """Writes the model as ONNX (`scratchnet export`): input `pixels` float32 [batch, c, h, w]
        0-255, output `logits` (or `probabilities` with softmax=True; tta="hflip" needs it)."""
        self._m.export_onnx(os.fspath(path), softmax, tta)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Every tensor of the model file by PyTorch's names, in its order ("layers.0.weight",
        Linear weights [out, in], Conv2d [out, in, kh, kw]; batch norms' running_mean,
        running_var and num_batches_tracked, the last 0-dimensional int64). Copies."""
        return dict(self._m.state_dict())

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Replaces every parameter and buffer from arrays named as `state_dict()` names them (a
        PyTorch state_dict converted with `.numpy()` fits). The optimizer state is kept."""
        entries = [(str(k), np.asarray(v, dtype=np.float32)) for k, v in state_dict.items()]
        self._m.load_state_dict(entries)

    def copy(self) -> "Model":
        """An independent copy of the model and its run (through a checkpoint in memory)."""
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "copy.ckpt.safetensors")
            self._m.save_checkpoint(p)
            return Model(_native.Model.load(p))


def load(path: PathLike) -> Model:
    """Reads a model file (`scratchnet train --out`, `Model.save`) or a checkpoint (which `fit`
    then continues exactly)."""
    return Model(_native.Model.load(os.fspath(path)))


def builtin(dataset: str = "fashion-mnist") -> Model:
    """The model built into scratchnet for "fashion-mnist" (the cnn-best CNN, 95.04% test) or
    "mnist" (the MNIST CNN, 99.71%): what the CLI uses without --model (`--dataset mnist`)."""
    return Model(_native.Model.builtin(dataset))


def presets() -> Dict[str, str]:
    """Preset name -> what it is."""
    return dict(_native.presets())

