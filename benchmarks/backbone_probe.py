"""Does pretraining help? Frozen-feature probes, pretrained backbone vs. a random one.

Held-out synthetic lines (seeds from the reserved range 1-999, never pretrained on): per line,
features of 50 parts train a probe that is scored on the rest:
- defect AUROC and accuracy of a logistic-regression probe (defect vs. ok, then the class);
- anomaly AUROC of a nearest-neighbour memory of the good parts' patch features (no labels):
  raw features, the part's worst patch; and as a taught line's memory compares them
  (unit-length features, mean of the 3 worst patches).
Real data, held-out groups of pretraining (never trained on): NEU-DET images and CWRU
recordings, a logistic-regression probe fitted on the train split, accuracy on held-out parts.

Run from the repository root (as a module: benchmarks/sensors.py would shadow `sensors`):
    python -m benchmarks.backbone_probe --checkpoint models/checkpoints/tiny
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspect_app.pretrain_data import OK, PretrainArrays, dataset_folder
from models.backbone import InspectBackbone
from models.config import BackboneConfig
from models.inputs import IMAGE_MEAN, IMAGE_STD
from sensors.spectrum import SpectrumConfig

HELD_OUT_SEEDS = (101, 202, 303, 404, 505, 606, 707, 808)  # 1-999: never pretrained on
REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data"


def held_out_line(seed: int, parts: int, cache: Path) -> PretrainArrays:
    """Arrays of a held-out synthetic line (generated here: the pretraining helper refuses it)."""
    from inspect_app.pretrain_data import _empty, _resize_image, _resize_mask
    from sensors.spectrum import spectrum_features
    from sensors.synthetic import draw_labels, make_part, visible_in
    from sensors.synthetic.spec import LineSpec

    path = cache / f"heldout-{seed}-{parts}.npz"
    if path.is_file():
        return PretrainArrays.load(path, f"heldout-{seed}")
    spec = LineSpec.from_seed(seed)
    labels = draw_labels(spec, parts, 0.5)
    a = _empty(f"heldout-{seed}", parts, 128, 128)
    a.labels = list(labels)
    for i, label in enumerate(labels):
        part = make_part(spec, i, label)
        if part.image is not None:
            a.images[i] = _resize_image(part.image, 128)
            a.masks[i] = _resize_mask(part.mask, 128)
            a.has_image[i] = True
        if part.vibration is not None:
            a.spectra[i] = spectrum_features(part.vibration, part.sample_rate_hz, part.rpm)[0]
            a.has_vibration[i] = True
        a.image_label_ok[i] = label == OK or visible_in(label, "image")
    a.save(path)
    return a


@torch.no_grad()
def features(
    model: InspectBackbone, a: PretrainArrays, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled part features (cls, mean image token, mean spectrum token), patch features and
    the defect-map head's largest patch logit per part."""
    pooled, patches, peak = [], [], []
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    for start in range(0, len(idx), 32):
        sel = idx[start : start + 32]
        image = spectrum = None
        if a.has_image[sel].any():
            image = (torch.from_numpy(a.images[sel]).permute(0, 3, 1, 2).float() / 255 - mean) / std
        if a.has_vibration[sel].any():
            spectrum = torch.from_numpy(a.spectra[sel])
        out = model(image=image, spectrum=spectrum)
        parts = [out.cls]
        if image is not None:
            parts.append(out.image_tokens.mean(1))
        if spectrum is not None:
            parts.append(out.spectrum_tokens.mean(1))
        pooled.append(torch.cat(parts, -1).numpy())
        patches.append(out.patch_features.numpy())
        logits = out.defect_logits
        peak.append(
            logits.max(-1).values.numpy()
            if logits is not None and logits.shape[1]
            else np.zeros(len(sel), np.float32)
        )
    return np.concatenate(pooled), np.concatenate(patches), np.concatenate(peak)


def fit_probe(x: np.ndarray, y: np.ndarray, n_classes: int, steps: int = 300) -> torch.nn.Linear:
    """Multinomial logistic regression on standardized features (L2, full-batch L-BFGS)."""
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).long()
    probe = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(xt), yt) + 1e-3 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (ties count half)."""
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = train.mean(0), train.std(0) + 1e-6
    return (train - mu) / sd, (test - mu) / sd


def probe_line(model: InspectBackbone, a: PretrainArrays, shots: int) -> dict[str, float]:
    idx = np.arange(len(a))
    pooled, patches, peak = features(model, a, idx)
    labels = np.array(a.labels)
    tr, te = idx[:shots], idx[shots:]
    classes = sorted(set(labels[tr]))
    y = np.array([classes.index(v) for v in labels[tr]])
    xtr, xte = standardize(pooled[tr], pooled[te])
    probe = fit_probe(xtr, y, len(classes))
    with torch.no_grad():
        prob = torch.softmax(probe(torch.from_numpy(xte).float()), -1).numpy()
    ok_col = classes.index(OK)
    defect_score = 1 - prob[:, ok_col]
    is_defect = labels[te] != OK
    pred = np.array(classes)[prob.argmax(1)]
    # good-part memory of patch features (PatchCore-style, no labels beyond "good")
    good = tr[labels[tr] == OK]
    memory = torch.from_numpy(patches[good].reshape(-1, patches.shape[-1]))
    test_patches = torch.from_numpy(patches[te])
    dist = torch.cdist(test_patches, memory.unsqueeze(0).expand(len(te), -1, -1))
    anomaly = dist.min(-1).values.max(-1).values.numpy()
    # the same memory as a taught line compares it: unit-length features, mean of the 3 worst
    unit = torch.nn.functional.normalize(test_patches, dim=-1)
    bank = torch.nn.functional.normalize(memory, dim=-1)
    near = torch.cdist(unit, bank.unsqueeze(0).expand(len(te), -1, -1)).min(-1).values
    line_memory = near.topk(3, dim=-1).values.mean(-1).numpy()
    visible = is_defect & a.image_label_ok[te]
    keep = visible | ~is_defect
    return {
        "defect_auroc": auroc(defect_score, is_defect),
        "accuracy": float((pred == labels[te]).mean()),
        "anomaly_auroc_image_defects": auroc(anomaly[keep], visible[keep]),
        "line_memory_auroc_image_defects": auroc(line_memory[keep], visible[keep]),
        "defect_map_zero_shot_auroc": auroc(peak[te][keep], visible[keep]),
    }


def probe_real(model: InspectBackbone, a: PretrainArrays, limit: int = 600) -> float:
    """Probe accuracy on held-out groups, fitted on (up to `limit`) train parts."""
    rng = np.random.default_rng(0)
    tr = np.flatnonzero(~a.held_out)
    tr = np.sort(rng.permutation(tr)[:limit])
    te = np.flatnonzero(a.held_out)
    labels = np.array(a.labels)
    classes = sorted(set(labels))
    ftr, _, _ = features(model, a, tr)
    fte, _, _ = features(model, a, te)
    xtr, xte = standardize(ftr, fte)
    probe = fit_probe(xtr, np.array([classes.index(v) for v in labels[tr]]), len(classes))
    with torch.no_grad():
        pred = probe(torch.from_numpy(xte).float()).argmax(-1).numpy()
    return float((np.array(classes)[pred] == labels[te]).mean())


@torch.no_grad()
def expert_balance(model: InspectBackbone, arrays: list[PretrainArrays]) -> list[float]:
    """Busiest / idlest expert load per MoE block, over every token of the given parts."""
    loads = [torch.zeros(g.weight.shape[0]) for g in model.moe_gates()]

    def counter(load: torch.Tensor) -> Any:
        def hook(_module: torch.nn.Module, _inputs: Any, out: tuple[torch.Tensor, ...]) -> None:
            load.add_(torch.bincount(out[1].flatten(), minlength=load.numel()).float())

        return hook

    hooks = [
        gate.register_forward_hook(counter(load))
        for gate, load in zip(model.moe_gates(), loads, strict=True)
    ]
    for a in arrays:
        features(model, a, np.arange(len(a)))
    for h in hooks:
        h.remove()
    return [float(load.max() / load.min().clamp_min(1)) for load in loads]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "models/checkpoints/tiny")
    parser.add_argument("--parts", type=int, default=90, help="parts per held-out line")
    parser.add_argument("--shots", type=int, default=50, help="labelled parts per line")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "probe-cache")
    parser.add_argument("--lines", type=int, default=len(HELD_OUT_SEEDS), help="held-out lines")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--no-random", action="store_true", help="probe the checkpoint only (no random baseline)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    pretrained = InspectBackbone.from_pretrained(args.checkpoint).eval()
    torch.manual_seed(0)
    random_init = InspectBackbone(BackboneConfig.named(pretrained.config.size_name)).eval()
    lines = [held_out_line(s, args.parts, args.cache) for s in HELD_OUT_SEEDS[: args.lines]]
    real: dict[str, PretrainArrays] = {}
    for name in ("neu-det", "cwru"):
        if (DATA / name).is_dir():
            path = args.cache / f"{name}.npz"
            if not path.is_file():
                dataset_folder(DATA / name, 128, SpectrumConfig()).save(path)
            real[name] = PretrainArrays.load(path, name)
    results: dict[str, dict[str, float]] = {}
    models = [("random init", random_init)] if not args.no_random else []
    for label, model in [*models, ("pretrained", pretrained)]:
        t0 = time.time()
        per_line = [probe_line(model, a, args.shots) for a in lines]
        row = {k: float(np.nanmean([p[k] for p in per_line])) for k in per_line[0]}
        for name, a in real.items():
            row[f"{name}_heldout_accuracy"] = probe_real(model, a)
        results[label] = row
        print(f"{label:12s} " + "  ".join(f"{k}={v:.3f}" for k, v in row.items()), end="")
        print(f"  ({time.time() - t0:.0f} s)")
    # the routing bias balances the pretraining mix, not each kind of data in it: experts may
    # specialise by domain (the DeepSeek-V3 report on batch-wise balance), so each domain
    # alone reads less balanced
    domains = {"held-out lines": lines, **{name: [a] for name, a in real.items()}}
    if real:
        domains["all of them"] = [*lines, *real.values()]
    for name, arrays in domains.items():
        balance = expert_balance(pretrained, arrays)
        print(
            f"pretrained, busiest/idlest expert load per MoE block, {name}: "
            + ", ".join(f"{b:.2f}" for b in balance)
        )
    print(
        f"held-out synthetic lines: seeds {HELD_OUT_SEEDS[: args.lines]}, {args.parts} parts each, "
        f"{args.shots} labelled; features frozen"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
