"""Make the pictures in docs/images/synthetic_*.png: python docs/synthetic_figures.py"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import signal

from sensors.spectrum import envelope_spectrum
from sensors.synthetic import IMAGE_CLASSES, VIBRATION_CLASSES, LineSpec, make_part

LINES = (15, 19, 8, 12)
labels = ("ok", *IMAGE_CLASSES)
fig, axes = plt.subplots(2 * len(LINES), len(labels), figsize=(2 * len(labels), 4.1 * len(LINES)))
for r, seed in enumerate(LINES):
    spec = LineSpec.from_seed(seed, classes=IMAGE_CLASSES)
    for c, label in enumerate(labels):
        part = make_part(spec, 3 + c, label, severity=None if label == "ok" else 0.55)
        ax, axm = axes[2 * r, c], axes[2 * r + 1, c]
        ax.imshow(part.image)
        ax.set_xticks([])
        ax.set_yticks([])
        axm.set_xticks([])
        axm.set_yticks([])
        if part.mask is not None:
            axm.imshow(part.image, alpha=0.55)
            axm.imshow(np.ma.masked_where(~part.mask, part.mask), cmap="autumn", alpha=0.8)
        else:
            axm.imshow(np.zeros_like(part.image))
        if r == 0:
            ax.set_title(label, fontsize=11)
        if c == 0:
            ax.set_ylabel(f"line {seed}\n{spec.surface.family}", fontsize=9)
            axm.set_ylabel("mask", fontsize=9)
fig.suptitle("Synthetic parts: good and each image defect (severity 0.55), mask below", y=0.995)
fig.tight_layout()
fig.savefig("docs/images/synthetic_parts.png", dpi=72)

seed = 15
spec = LineSpec.from_seed(seed, classes=VIBRATION_CLASSES)
crack_spec = LineSpec.from_seed(seed, classes=("crack",))
m = spec.machine
faults = ("bearing_outer", "bearing_inner", "imbalance", "looseness", "crack")
fig, axes = plt.subplots(len(faults), 2, figsize=(13, 2.6 * len(faults)))
good = make_part(spec, 1)
fr = good.rpm / 60


def spectra(x, fs):
    f, p = signal.welch(x, fs, nperseg=4096)
    fe, a = envelope_spectrum(x, fs)
    return f, p, fe, a


g = spectra(good.vibration, good.sample_rate_hz)
for row, label in enumerate(faults):
    s = crack_spec if label == "crack" else spec
    bad = make_part(s, 1, label, severity=0.5)
    b = spectra(bad.vibration, bad.sample_rate_hz)
    ax, axe = axes[row]
    ax.semilogy(g[0], g[1], color="tab:green", lw=0.8, label="ok")
    ax.semilogy(b[0], b[1], color="tab:red", lw=0.8, alpha=0.8, label=label)
    ax.axvline(m.housing.freq_hz, color="gray", ls=":", lw=1)
    ax.set_xlim(0, 6000)
    ax.set_ylabel("PSD (g²/Hz)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(
        f"{label}: Welch PSD (dotted: housing resonance {m.housing.freq_hz:.0f} Hz)", fontsize=9
    )
    if label in ("imbalance", "looseness"):
        ins = ax.inset_axes([0.08, 0.45, 0.35, 0.5])
        f, p = g[0], g[1]
        ins.semilogy(f, p, color="tab:green", lw=0.8)
        ins.semilogy(b[0], b[1], color="tab:red", lw=0.8)
        ins.set_xlim(0, 10.5 * fr)
        ins.set_xticks([k * fr for k in range(0, 11, 2)])
        ins.set_xticklabels([f"{k}x" for k in range(0, 11, 2)], fontsize=7)
        ins.tick_params(labelsize=6)
    axe.plot(g[2], g[3], color="tab:green", lw=0.8, label="ok")
    axe.plot(b[2], b[3], color="tab:red", lw=0.8, alpha=0.8, label=label)
    marks = {
        "bearing_outer": (("BPFO", m.bearing.bpfo_order),),
        "bearing_inner": (("BPFI", m.bearing.bpfi_order),),
        "looseness": (("0.5x", 0.5),),
        "imbalance": (("1x", 1.0),),
    }.get(label, ())
    for name, order in marks:
        for k in (1, 2, 3):
            axe.axvline(
                k * order * fr,
                color="tab:blue",
                ls="--",
                lw=0.8,
                alpha=0.6,
                label=f"{name} and harmonics" if k == 1 else None,
            )
    axe.set_xlim(0, 500)
    axe.set_ylabel("envelope (g)")
    axe.set_title(f"{label}: envelope spectrum, 2-5 kHz band (shaft {fr:.1f} Hz)", fontsize=9)
    axe.legend(loc="upper right", fontsize=8)
axes[-1, 0].set_xlabel("Hz")
axes[-1, 1].set_xlabel("Hz")
fig.suptitle(
    f"Synthetic line {seed}: good vs. each vibration fault (severity 0.5, 1 s at 25.6 kHz)"
)
fig.tight_layout()
fig.savefig("docs/images/synthetic_spectra.png", dpi=80)
