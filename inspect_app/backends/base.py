"""What every inference backend promises: `predict(inputs) -> BackendResult` on numpy arrays.

A backend is chosen by model file (see `inspect_app.backends.open_backend`); the pipeline only
sees this protocol, so torch, onnxruntime and TensorRT are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

OUTPUT_NAMES: tuple[str, ...] = ("defect_score", "class_probs", "heatmap", "anomaly_score")
"""Output names of an exported line graph, in this order; the same fields as `Prediction`."""

INPUT_NAMES: tuple[str, ...] = ("image", "spectrum", "image_present", "vibration_present")
"""Input names of an exported line graph; the same fields as `ModelInputs`."""


class BackendError(RuntimeError):
    """A backend could not be opened or could not score a batch (the parts become FAULT)."""


@dataclass(frozen=True)
class BackendResult:
    """One batch of model outputs as numpy arrays (the fields of `models.outputs.Prediction`).

    `defect_score (B,)` in [0, 1], `class_probs (B, C)` over the line's defect classes,
    `heatmap (B, h, w)` in [0, 1], `anomaly_score (B,)` raw distance to the good parts.
    """

    defect_score: np.ndarray
    class_probs: np.ndarray
    heatmap: np.ndarray
    anomaly_score: np.ndarray

    def __post_init__(self) -> None:
        n = self.defect_score.shape[0] if self.defect_score.ndim == 1 else -1
        shapes = {
            "defect_score": (self.defect_score.shape, 1),
            "class_probs": (self.class_probs.shape, 2),
            "heatmap": (self.heatmap.shape, 3),
            "anomaly_score": (self.anomaly_score.shape, 1),
        }
        for name, (shape, ndim) in shapes.items():
            if len(shape) != ndim or shape[0] != n:
                msg = (
                    f"backend output {name} has shape {shape}; expected {ndim} dimensions with "
                    f"the batch size {n} first"
                )
                raise BackendError(msg)

    def __len__(self) -> int:
        return int(self.defect_score.shape[0])

    def row(self, i: int) -> BackendResult:
        """Part `i` of the batch, as a batch of one."""
        return BackendResult(
            defect_score=self.defect_score[i : i + 1],
            class_probs=self.class_probs[i : i + 1],
            heatmap=self.heatmap[i : i + 1],
            anomaly_score=self.anomaly_score[i : i + 1],
        )

    def finite_rows(self) -> np.ndarray:
        """(B,) bool: True where every output of that part is a finite number."""
        b = len(self)
        return (
            np.isfinite(self.defect_score).reshape(b, -1).all(axis=1)
            & np.isfinite(self.class_probs).reshape(b, -1).all(axis=1)
            & np.isfinite(self.heatmap).reshape(b, -1).all(axis=1)
            & np.isfinite(self.anomaly_score).reshape(b, -1).all(axis=1)
        )

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> BackendResult:
        """From a name → array mapping (an exported graph's outputs, or a Prediction's fields)."""
        missing = [n for n in OUTPUT_NAMES if n not in arrays]
        if missing:
            msg = f"backend outputs lack {missing}; expected all of {list(OUTPUT_NAMES)}"
            raise BackendError(msg)
        return cls(**{n: np.asarray(arrays[n], dtype=np.float32) for n in OUTPUT_NAMES})


@runtime_checkable
class Backend(Protocol):
    """Scores a batch of prepared model inputs. Implementations must be safe to call from one
    worker thread at a time (the pipeline never calls `predict` concurrently)."""

    name: str

    def predict(self, inputs: Any) -> BackendResult:
        """`inputs` is a `models.inputs.ModelInputs`; returns numpy outputs for the batch."""
        ...

    def close(self) -> None:
        """Release sessions, engines and memory."""
        ...
