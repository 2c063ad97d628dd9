"""Draw docs/images/cwru_spectra.png: real CWRU envelope spectra, normal vs. inner vs. outer race.

    python docs/cwru_spectra.py            # needs ../shared/data/cwru beside the checkout

Each fault recording is read through the dataset contract; the expected defect frequencies
(BPFI = 5.4152 x shaft speed, BPFO = 3.5848 x) are drawn from the rpm in labels.csv.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sensors.dataset import LineDataset
from sensors.spectrum import SpectrumConfig, envelope_spectrum, spectrum_features

REPO = Path(__file__).resolve().parents[1]
CWRU = REPO / ".." / "shared" / "data" / "cwru"
OUT = REPO / "docs" / "images" / "cwru_spectra.png"
BPFI, BPFO = 5.4152, 3.5848
SECONDS = 2.5
SHOWN = [
    ("recordings/Normal_0_head", "normal (48 kHz)", "tab:green", None),
    ("recordings/IR021_0", "inner race 0.021 in (12 kHz)", "tab:red", BPFI),
    ("recordings/OR021@6_0", "outer race 0.021 in (12 kHz)", "tab:blue", BPFO),
]


def main() -> None:
    ds = LineDataset.open(CWRU.resolve())
    by_id = {row.part_id: i for i, row in enumerate(ds.rows)}
    config = SpectrumConfig()
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), constrained_layout=True)
    for ax, (part_id, title, color, order) in zip(axes, SHOWN, strict=False):
        w = ds[by_id[part_id]].vibration
        assert w is not None and w.rpm is not None
        x = w.samples[: round(SECONDS * w.sample_rate_hz)]
        freqs, amp = envelope_spectrum(x, w.sample_rate_hz, config.env_band_hz)
        keep = freqs <= config.env_max_hz
        ax.plot(freqs[keep], 1e3 * amp[keep], color=color, lw=0.8)
        shaft = w.rpm / 60.0
        ax.axvline(shaft, color="gray", ls=":", lw=1)
        for k, (mult, name) in enumerate([(BPFI, "BPFI"), (BPFO, "BPFO")]):
            for h in (1, 2):
                ax.axvline(h * mult * shaft, color=["tab:red", "tab:blue"][k], ls="--", lw=0.8,
                           alpha=0.9 if order == mult else 0.3)  # fmt: skip
            if order == mult:
                ax.text(mult * shaft + 3, ax.get_ylim()[1] * 0.9, f"{name} {mult * shaft:.1f} Hz",
                        color=["tab:red", "tab:blue"][k])  # fmt: skip
        ax.set_title(f"{title}: {part_id.split('/')[-1]}, {w.rpm:.0f} rpm (shaft {shaft:.1f} Hz)")
        ax.set_ylabel("envelope amplitude (mg)")
        ax.set_xlim(0, config.env_max_hz)
    ax = axes[3]
    bin_hz = np.linspace(0, config.env_max_hz, config.n_bins + 1)
    centers = (bin_hz[:-1] + bin_hz[1:]) / 2
    for part_id, title, color, _ in SHOWN:
        w = ds[by_id[part_id]].vibration
        assert w is not None
        x = w.samples[: round(SECONDS * w.sample_rate_hz)]
        ax.plot(centers, spectrum_features(x, w.sample_rate_hz, config=config)[0, 1],
                color=color, lw=1, label=title)  # fmt: skip
    ax.axvline(BPFI * 1797 / 60, color="tab:red", ls="--", lw=0.8, alpha=0.6)
    ax.axvline(BPFO * 1796 / 60, color="tab:blue", ls="--", lw=0.8, alpha=0.6)
    ax.set_title(
        f"what the model sees: envelope channel of spectrum_features ({config.n_bins} bins; "
        "0 = Gaussian noise, no impacts)"
    )
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("standardized log power")
    ax.set_xlim(0, config.env_max_hz)
    ax.legend(loc="upper right")
    fig.suptitle(
        "CWRU drive-end bearing (SKF 6205): envelope spectra, band 2-5 kHz\n"
        "dashed: BPFI (red), BPFO (blue) and their 2x; dotted: shaft speed"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
