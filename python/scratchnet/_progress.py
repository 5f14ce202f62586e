"""Progress display for fit and evaluate: tqdm when it is installed (a widget in Jupyter, a bar in
a terminal), else a plain one-line bar on stderr; and the CLI's per-epoch line."""

from __future__ import annotations

import sys
from typing import Any, Dict, Optional


def interactive() -> bool:
    """Whether someone is watching: a terminal on stderr, or a Jupyter kernel."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _tqdm() -> Any:
    try:
        from tqdm.auto import tqdm  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except Exception:
        return None
    return tqdm


class _PlainBar:
    """A one-line bar redrawn with a carriage return (terminals and notebooks both honour it)."""

    def __init__(self, total: int, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit, self.n, self.postfix = total, desc, unit, 0, ""
        self._width = 0

    def update_to(self, n: int, postfix: str) -> None:
        self.n, self.postfix = n, postfix
        frac = self.n / max(self.total, 1)
        filled = int(30 * frac)
        bar = "=" * filled + (">" if filled < 30 else "") + " " * max(29 - filled, 0)
        line = f"{self.desc} [{bar}] {self.n}/{self.total} {self.unit}{', ' + postfix if postfix else ''}"
        sys.stderr.write("\r" + line.ljust(self._width))
        self._width = len(line)
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\r" + " " * self._width + "\r")
        sys.stderr.flush()


class Progress:
    """Receives the native side's ticks (phase, done, total, loss, accuracy) at up to 10 Hz."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: Any = None
        self.phase: Optional[int] = None
        self.tqdm = _tqdm()

    def _open(self, phase: int, total: int) -> None:
        self.close()
        self.phase = phase
        desc = self.desc if phase == 0 else f"{self.desc} evaluating"
        unit = "batches" if phase == 0 else "images"
        if self.tqdm is not None:
            self.bar = self.tqdm(total=total, desc=desc, unit=unit.rstrip("s"), leave=False, file=sys.stderr)
        else:
            self.bar = _PlainBar(total, desc, unit)

    def __call__(self, phase: int, done: int, total: int, loss: float, accuracy: float) -> None:
        if phase != self.phase or self.bar is None:
            self._open(phase, total)
        postfix = f"loss {loss:.4f} acc {100 * accuracy:.2f}%"
        if self.tqdm is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(postfix, refresh=False)
        else:
            self.bar.update_to(done, postfix)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.phase = None


def epoch_line(s: Dict[str, Any], total: int) -> str:
    """The CLI's line for a finished epoch (`scratchnet train` prints the same)."""

    def pct(v: float) -> str:
        return f"{100 * v:.2f}%"

    test = "  test -"
    if s.get("test_accuracy") is not None:
        test = f"  test {pct(s['test_accuracy'])}"
        if s.get("test_loss") is not None:
            test += f" loss {s['test_loss']:.4f}"
    val = ""
    if s.get("validation_accuracy") is not None:
        val = f"  val {pct(s['validation_accuracy'])}"
        if s.get("validation_loss") is not None:
            val += f" loss {s['validation_loss']:.4f}"
    return (
        f"epoch {s['epoch']:>3}/{total}  lr {s['lr']:.6f}  loss {s['train_loss']:.4f}  "
        f"train {pct(s['train_accuracy'])}{val}{test}  {s['seconds']:.1f}s  {s['images_per_second']:.0f} img/s"
    )
