"""Draw the pretraining curve of docs/backbone.md from a run's log.jsonl (or several stages').

Run:  python docs/backbone_figures.py runs/pretrain-tiny/log.jsonl \
          runs/pretrain-tiny-stage2/log.jsonl docs/images/pretrain_curve.png
Each further log is a stage started from the one before (`--init-from`); its steps follow on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def smooth(values: np.ndarray, window: int = 25) -> np.ndarray:
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def main(logs: list[Path], out: Path) -> None:
    rows: list[dict] = []
    starts = []
    for log in logs:
        offset = rows[-1]["step"] if rows else 0
        starts.append(offset)
        for line in log.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append({**row, "step": row["step"] + offset})
    step = np.array([r["step"] for r in rows])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for start in starts[1:]:
        for a in (ax, ax2):
            a.axvline(start, color="gray", linestyle=":", linewidth=1)
    for key, label in (
        ("loss", "total"),
        ("class", "part class (CE)"),
        ("defect_map", "patch defect map (BCE)"),
        ("masked_patch", "masked patches (MSE)"),
    ):
        ax.plot(step, smooth(np.array([r[key] for r in rows], float)), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (moving average of 25 steps)")
    ax.legend(fontsize=8)
    acc = np.array([r["class_accuracy"] for r in rows], float)
    acc = np.where(np.isfinite(acc), acc, np.nan)
    ax2.plot(step, smooth(np.nan_to_num(acc, nan=float(np.nanmean(acc)))), color="C4")
    ax2.set_xlabel("step")
    ax2.set_ylabel("training batch class accuracy")
    ax2.set_ylim(0, 1)
    fig.suptitle("inspect-app pretrain --config tiny")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:-1]], Path(sys.argv[-1]))
