"""The torch backend: a line model (`models.line_model.LineModel`) run eagerly on CPU or GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from inspect_app.backends.base import OUTPUT_NAMES, BackendError, BackendResult


class TorchBackend:
    """Runs any module whose forward takes `ModelInputs` fields and returns a `Prediction`."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_line_folder(cls, folder: Path, device: str = "cpu") -> TorchBackend:
        """Load the line model of a version folder (`HOME/lines/<line>/vN`)."""
        from inspect_app.lines import read_card
        from models.line_model import LineModel

        card = read_card(folder)
        try:
            model = LineModel.load(folder, card.model)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            msg = f"cannot load the line model in {folder}: {exc}"
            raise BackendError(msg) from exc
        return cls(model, device=device)

    def predict(self, inputs: Any) -> BackendResult:
        kwargs = {
            k: (v.to(self.device) if isinstance(v, torch.Tensor) else v)
            for k, v in inputs.as_kwargs().items()
        }
        with torch.inference_mode():
            prediction = self.model(**kwargs)
        return BackendResult.from_arrays(
            {n: getattr(prediction, n).detach().float().cpu().numpy() for n in OUTPUT_NAMES}
        )

    def close(self) -> None:
        self.model.to("cpu")
