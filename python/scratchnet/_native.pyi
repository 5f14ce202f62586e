"""Type stubs of scratchnet's native module (Rust, PyO3): checked against it by mypy's stubtest."""

from typing import Callable, List, Optional, Tuple, final

import numpy as np

EVAL_BATCH: int

_Progress = Callable[[int, int, int, float, float], object]

@final
class Model:
    @staticmethod
    def preset(name: str, seed: int, dataset: str, config: Optional[str] = None) -> Model: ...
    @staticmethod
    def from_spec(
        spec: str,
        seed: int,
        dataset: str,
        classes: Optional[List[str]] = None,
        config: Optional[str] = None,
    ) -> Model: ...
    @staticmethod
    def load(path: str) -> Model: ...
    @staticmethod
    def from_bytes(data: bytes, source: str = "<bytes>") -> Model: ...
    @staticmethod
    def builtin(dataset: str) -> Model: ...
    def info(self) -> str: ...
    def set_tta(self, name: str) -> None: ...
    def to_device(self, device: str) -> None: ...
    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: Optional[int],
        batch_size: Optional[int],
        threads: Optional[int],
        device: Optional[str],
        validation: Optional[Tuple[np.ndarray, np.ndarray]],
        test: Optional[Tuple[np.ndarray, np.ndarray]],
        progress: Optional[_Progress],
        on_epoch: Optional[Callable[[str], object]],
        checkpoint: Optional[str],
        checkpoint_every: Optional[int],
        command: str,
    ) -> str: ...
    def predict_proba_u8(
        self,
        x: np.ndarray,
        tta: Optional[str] = None,
        batch_size: Optional[int] = None,
        threads: Optional[int] = None,
    ) -> np.ndarray: ...
    def predict_proba_f32(
        self,
        x: np.ndarray,
        factor: float,
        tta: Optional[str] = None,
        batch_size: Optional[int] = None,
        threads: Optional[int] = None,
    ) -> np.ndarray: ...
    def evaluate_u8(
        self,
        x: np.ndarray,
        y: np.ndarray,
        tta: Optional[str] = None,
        batch_size: Optional[int] = None,
        threads: Optional[int] = None,
        progress: Optional[_Progress] = None,
    ) -> Tuple[float, float, List[float], np.ndarray]: ...
    def to_bytes(self) -> bytes: ...
    def save(self, path: str) -> None: ...
    def save_checkpoint(self, path: str) -> None: ...
    def export_onnx(self, path: str, softmax: bool = False, tta: Optional[str] = None) -> None: ...
    def state_dict(self) -> List[Tuple[str, np.ndarray]]: ...
    def load_state_dict(self, entries: List[Tuple[str, np.ndarray]]) -> None: ...

def load_dataset(
    name: str, split: str, data_dir: Optional[str] = None
) -> Tuple[np.ndarray, np.ndarray, List[str], str, str]: ...
def quantize(x: np.ndarray, factor: float) -> Tuple[np.ndarray, int, float, float, int]: ...
def presets() -> List[Tuple[str, str]]: ...
def dataset_classes(name: str) -> List[str]: ...
def recipe(name: Optional[str] = None) -> str: ...


__all__ = ["Model", "load_dataset", "quantize", "presets", "dataset_classes", "recipe", "EVAL_BATCH"]
