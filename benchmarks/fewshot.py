"""Few-shot benchmark: teach a line from 50 parts, measure it on parts it never saw.

Rows: our line model adapted by prompt tuning, LoRA and a linear probe (the frozen backbone +
good-part memory, as `inspect-app adapt` builds it), a torchvision ResNet-18 trained from scratch
on the same parts, and a classical baseline (colour / gradient histograms and the spectrum with
nearest neighbours). Each on image-only, vibration-only and fused inputs where the data has them.
Columns: miss rate and false-reject rate at the threshold each method sets on its own 50 parts
(out-of-fold, for the target miss rate), AUROC and class accuracy on the test parts, adapt time.

Data:
- synthetic lines with held-out seeds (never in pretraining, docs/synthetic.md): 50 adapt parts
  drawn from a pool, test parts numbered far from the pool's;
- CWRU (real bearing vibration): windows cut from each recording, the first half of every
  recording in time for adapting, the second half for testing (no window crosses the split);
  pretraining saw these recordings (it held out too little of the one normal recording);
- NEU-DET (real steel images): only the images pretraining held out; there is no defect-free
  class, so only defect classification is measured (class accuracy); miss/false-reject/AUROC
  are not defined there.

Run (prints a markdown table and writes JSON):
    python -m benchmarks.fewshot --quick            # 2 synthetic lines, 1 seed, fewer rows
    python -m benchmarks.fewshot --seeds 0 1 2      # the full table
    python -m benchmarks.fewshot --table-from a.json b.json   # one table from several runs
    python -m benchmarks.fewshot --paired old.json new.json   # run by run: higher / lower
    python -m benchmarks.fewshot --real-only --cwru-rate 8000 --seeds 0 1 2 --methods prompt
        # CWRU as an 8 kHz sensor would have recorded it (a line with fitted spectra)
    python -m benchmarks.fewshot --real-only --cwru-window 0.05 --seeds 0 1 2 --methods prompt
        # CWRU in 50 ms windows, as a fast line gives each part (spectra fitted to them)
    python -m benchmarks.fewshot --no-real --good-only --methods prompt classical
        # lines taught from 50 good parts only (as from an MVTec AD train/good): the threshold
        # for a 5 % out-of-fold false-reject rate; each row also keeps what the highest good
        # score as threshold would have given (extra.highest_good)
    python -m benchmarks.fewshot --lines 1101 --seeds 0 --methods prompt --per-class
        # and per defect class: recall, and what each anomaly source and the classifier
        # would catch alone (AUROC), with how often adapt kept it
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from inspect_app.commands.adapt import template_size_arg
from inspect_app.defaults import ALIGN_MODES, DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE
from inspect_app.metrics import (
    PartResult,
    compute_metrics,
    line_threshold,
    threshold_for_miss_rate,
)
from inspect_app.pretrain_data import held_out_of_pretraining
from inspect_app.teach import (
    batched_inputs,
    get_backbone,
    line_spectrum,
    prepare_adapt_inputs,
    stratified_sample,
)
from models.adapt import AdaptConfig, AdaptData, adapt_line, stratified_folds
from models.inputs import ModelInputs
from models.line_model import CLASSIFIER_FUSIONS
from sensors.dataset import LineDataset
from sensors.sample import OK_LABEL, Sample
from sensors.spectrum import SpectrumConfig

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SYNTH_SEEDS = (101, 202, 303, 404, 505)  # held out: 1-999 are never used in pretraining
TARGET_MISS = 0.005


@dataclass
class Task:
    """One benchmark dataset: the pool to draw 50 parts from and the test parts."""

    name: str
    modality: str  # image | vibration | fused
    pool: list[Sample]
    test: list[Sample]
    has_ok: bool = True


@dataclass
class Row:
    method: str
    task: str
    modality: str
    seed: int
    miss_rate: float | None
    false_reject_rate: float | None
    auroc: float | None
    class_accuracy: float | None
    adapt_s: float
    extra: dict[str, Any] = field(default_factory=dict)


# -- data -------------------------------------------------------------------------------------


def _strip(samples: Sequence[Sample], keep: str) -> list[Sample]:
    """Parts with only one sensor; parts whose defect that sensor cannot see are dropped."""
    from sensors.synthetic import visible_in

    out = []
    for s in samples:
        if s.label != OK_LABEL and not visible_in(str(s.label), keep):
            continue
        out.append(
            Sample(
                part_id=s.part_id,
                frame=s.frame if keep == "image" else None,
                vibration=s.vibration if keep == "vibration" else None,
                label=s.label,
                mask=s.mask if keep == "image" else None,
            )
        )
    return out


def cached_line(
    cache: Path,
    seed: int,
    name: str,
    parts: int,
    start: int,
    image_size: int,
    defect_fraction: float = 0.5,
    housing_hz: float | None = None,
) -> Path:
    """Synthetic line `seed`'s parts `start`.. (`parts` of them) at `image_size` px, generated
    once into `cache` and shared by the benchmarks (fewshot, calibrate, visibility): the folder
    is named by seed, part range and frame size (128 px keeps its older name, without a size),
    and by `housing_hz` where given (the machine's housing ringing there, `synth --housing-hz`).
    A folder of that name whose frames are another size (an older benchmark wrote 256 px frames
    under a 128 px name) is made again, so one benchmark's parts never stand in for another's."""
    from sensors.synthetic import write_line

    suffix = "" if image_size == 128 else f"-{image_size}px"
    suffix += "" if housing_hz is None else f"-housing{housing_hz:g}hz"
    folder = cache / f"synth-{seed}-{name}-{parts}{suffix}"
    if not (folder / "labels.csv").is_file() or _frame_size(folder) != image_size:
        write_line(
            folder,
            seed,
            parts,
            defect_fraction=defect_fraction,
            start_index=start,
            image_size=image_size,
            housing_hz=housing_hz,
            overwrite=True,
        )
    return folder


def _frame_size(folder: Path) -> int | None:
    """The height of the first image of a cached line (None when it has none)."""
    import csv

    import cv2

    with (folder / "labels.csv").open(newline="") as f:
        first = next(csv.DictReader(f), None)
    if not first or not first.get("image"):
        return None
    image = cv2.imread(str(folder / first["image"]), cv2.IMREAD_UNCHANGED)
    return None if image is None else int(image.shape[0])


def synthetic_tasks(
    cache: Path,
    seeds: Sequence[int],
    pool: int,
    test: int,
    image_size: int = 128,
    housing_hz: float | None = None,
) -> list[Task]:
    tasks = []
    for seed in seeds:
        folders = {
            part: cached_line(cache, seed, part, n, start, image_size, housing_hz=housing_hz)
            for part, (n, start) in {"pool": (pool, 0), "test": (test, 100000)}.items()
        }
        p = list(LineDataset.open(folders["pool"]))
        t = list(LineDataset.open(folders["test"]))
        tasks.append(Task(f"synth-{seed}", "fused", p, t))
        tasks.append(Task(f"synth-{seed}", "image", _strip(p, "image"), _strip(t, "image")))
        tasks.append(
            Task(f"synth-{seed}", "vibration", _strip(p, "vibration"), _strip(t, "vibration"))
        )
    return tasks


CWRU_WINDOW_S = 0.25


def cwru_task(window_s: float, rate_hz: float | None = None) -> Task | None:
    """CWRU's recordings in windows of `window_s`, split in time; with `rate_hz`, every
    recording resampled to that rate first (as a slower sensor would have sampled it)."""
    folder = DATA / "cwru"
    if not (folder / "labels.csv").is_file():
        print(f"skip CWRU: {folder} not found", file=sys.stderr)
        return None
    name = "cwru"
    with tempfile.TemporaryDirectory(prefix="cwru-") as tmp:
        if rate_hz is not None:
            folder = _resampled_recordings(folder, rate_hz, Path(tmp))
            name += f" at {rate_hz / 1000:g} kHz"
        if window_s != CWRU_WINDOW_S:
            name += f", {window_s:g} s windows"
        name += " (pretrained on)"
        ds = LineDataset.open(folder, window_s=window_s)
        pool, test = [], []
        by_file: dict[str, list[int]] = {}
        for i, r in enumerate(ds.rows):
            by_file.setdefault(str(r.vibration), []).append(i)
        for idx in by_file.values():
            half = len(idx) // 2  # split in time: the first half adapts, the second half tests
            pool += [ds.load(i) for i in idx[:half]]
            test += [ds.load(i) for i in idx[half:]]
    # pretraining held out one recording per fault but only the normal recording's last second:
    # too few good windows to adapt and test on, so these rows use recordings it was trained on
    return Task(name, "vibration", pool, test)


def _resampled_recordings(folder: Path, rate_hz: float, out: Path) -> Path:
    """`folder`'s vibration recordings, whole, resampled to `rate_hz` (polyphase, with its
    anti-aliasing filter) into a dataset folder `out` with the same part ids, labels and rpm."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    ds = LineDataset.open(folder)
    rows = ["vibration,label,sample_rate_hz,rpm,part_id"]
    for i, row in enumerate(ds.rows):
        v = ds[i].vibration
        assert v is not None and row.vibration is not None  # CWRU rows are recordings
        ratio = Fraction(rate_hz / v.sample_rate_hz).limit_denominator(1000)
        x = resample_poly(v.samples.astype(np.float64), ratio.numerator, ratio.denominator)
        relative = f"recordings/{Path(row.vibration).stem}.npy"
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        np.save(out / relative, x.astype(np.float32))
        rows.append(f"{relative},{row.label},{rate_hz:g},{v.rpm or ''},{row.part_id}")
    (out / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def neu_task(per_class_test: int) -> Task | None:
    folder = DATA / "neu-det"
    if not (folder / "labels.csv").is_file():
        print(f"skip NEU-DET: {folder} not found", file=sys.stderr)
        return None
    ds = LineDataset.open(folder)
    # only the images pretraining held out (a fifth, 60 per class): the backbone was trained
    # on the others with their labels, so naming them would not be few-shot
    unseen = held_out_of_pretraining(ds)
    rng = np.random.default_rng(0)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(ds.labels):
        if unseen[i]:
            by_label.setdefault(str(label), []).append(i)
    pool, test = [], []
    for idx in by_label.values():
        order = rng.permutation(idx)
        test += [ds.load(int(i)) for i in order[:per_class_test]]
        pool += [ds.load(int(i)) for i in order[per_class_test : per_class_test + 20]]
    for s in pool + test:
        s.mask = None  # boxes, not masks: pixel metrics are not the point here
    return Task("neu-det (held out of pretraining)", "image", pool, test, has_ok=False)


# -- our line model ---------------------------------------------------------------------------


@dataclass
class _Card:
    modalities: list[str]
    image_size: int
    spectrum: dict[str, Any]
    align: dict[str, Any] = field(default_factory=dict)
    align_refused: str | None = None


def run_ours(
    task: Task,
    train: list[Sample],
    method: str,
    seed: int,
    backbone: Any,
    align: str = "auto",
    template_size: int | str = "auto",
    classifier_fusion: str = "agree_z",
) -> Row:
    modalities = ["image", "vibration"] if task.modality == "fused" else [task.modality]
    card = _Card(
        modalities,
        backbone.config.image_size,
        line_spectrum(train, backbone.config.spectrum_bins).to_dict(),
    )
    classes = sorted({str(s.label) for s in train if s.label != OK_LABEL})
    labels = torch.tensor(
        [0 if s.label == OK_LABEL else classes.index(str(s.label)) + 1 for s in train]
    )
    t0 = time.perf_counter()
    # as `inspect-app adapt --align --template-size`; the test parts are then registered by
    # prepare_batch from card.align, at card.image_size
    x, scale = prepare_adapt_inputs(train, card, labels == 0, align, template_size=template_size)
    config = AdaptConfig(
        method=method,
        seed=seed,
        image_template=bool(card.align),
        image_scale=scale,
        classifier_fusion=classifier_fusion,
    )
    result = adapt_line(backbone, AdaptData(x, labels, classes, modalities), config)
    assert result.oof is not None
    oof = result.oof.defect_score.numpy()
    defective = labels.numpy() > 0
    threshold = (
        line_threshold(
            oof[defective], oof[~defective], TARGET_MISS, DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE
        )
        if task.has_ok
        else 0.5
    )
    adapt_s = time.perf_counter() - t0
    model = result.model.eval()
    xt = batched_inputs(task.test, card)
    scores, classes_out = [], []
    sources: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for i in range(0, len(task.test), 32):
            part = ModelInputs(
                *(
                    None if t is None else t[i : i + 32]
                    for t in (xt.image, xt.spectrum, xt.image_present, xt.vibration_present)
                )
            )
            pred = model(**part.as_kwargs())
            scores.append(pred.defect_score)
            classes_out.append(
                pred.class_probs.argmax(-1)
                if pred.class_probs.shape[1]
                else torch.full((pred.defect_score.shape[0],), -1)
            )
            for name, values in source_scores(model, part).items():
                sources.setdefault(name, []).append(values)
    score = torch.cat(scores).numpy()
    cls = torch.cat(classes_out).numpy()
    names = [classes[int(c)] if c >= 0 else None for c in cls]
    row = _row(f"{method}", task, seed, score, names, threshold, classes, adapt_s)
    if not defective.any() and task.has_ok:
        row.extra["highest_good"] = _highest_good_rule(task, oof, score)
    if task.has_ok:
        # what `adapt` prints for the line: its rates on the out-of-fold scores
        row.extra["out_of_fold"] = {
            "miss_rate": float((oof[defective] < threshold).mean()) if defective.any() else None,
            "false_reject_rate": float((oof[~defective] >= threshold).mean()),
        }
        joined = {k: torch.cat(v).numpy() for k, v in sources.items()}
        row.extra["per_class"] = per_class(task, score, threshold, joined)
        kept = list(model.settings.anomaly_sources)
        row.extra["sources_kept"] = kept + (
            ["classifier"] if model.settings.fusion in CLASSIFIER_FUSIONS else []
        )
    return row


def _highest_good_rule(task: Task, oof: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """A good-only line's test rates at the threshold set before (just above the highest
    out-of-fold good score: the miss-rate rule without defective parts), to compare with the
    false-reject target's."""
    threshold = threshold_for_miss_rate(np.empty(0), oof, TARGET_MISS)
    defective = np.array([s.label != OK_LABEL for s in task.test])
    return {
        "miss_rate": float((score[defective] < threshold).mean()),
        "false_reject_rate": float((score[~defective] >= threshold).mean()),
    }


def source_scores(model: Any, part: ModelInputs) -> dict[str, torch.Tensor]:
    """Each anomaly source's standardized score and the classifier's (in good-part spreads),
    whether or not adapt kept them: what each could tell about these parts on its own."""
    image, spectrum = model._inputs(part.image, part.spectrum)
    base, out = model.passes(image, spectrum, part.image_present, part.vibration_present)
    found = model.anomaly_components(
        base, spectrum, part.image_present, part.vibration_present, image
    )
    site_name = model.site_source() if model.settings.site_pool else None
    site = found[site_name].patch_scores if site_name in found else None
    logits = model.class_logits(model.pool(out, part.image_present, part.vibration_present, site))
    scores = {name: m.score for name, m in found.items()}
    if logits.shape[1] > 1:
        scores["classifier"] = model.classifier_z(logits)
    return scores


def per_class(
    task: Task, score: np.ndarray, threshold: float, sources: dict[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """Per defect class of the test parts: how many, the share failed at the threshold, and
    each source's AUROC against the good test parts."""
    from models.adapt import rank_auroc

    labels = np.array([str(s.label) for s in task.test])
    good = labels == OK_LABEL
    out: dict[str, dict[str, Any]] = {}
    for label in sorted(set(labels) - {OK_LABEL}):
        these = labels == label
        keep = torch.from_numpy(these | good)
        positive = torch.from_numpy(these[these | good])
        out[label] = {
            "n": int(these.sum()),
            "recall": float((score[these] >= threshold).mean()),
            "auroc": {
                name: rank_auroc(torch.from_numpy(values)[keep], positive)
                for name, values in sources.items()
            },
        }
    return out


def _row(
    method: str,
    task: Task,
    seed: int,
    score: np.ndarray,
    names: Sequence[str | None],
    threshold: float,
    classes: Sequence[str],
    adapt_s: float,
) -> Row:
    parts = [
        PartResult(s.part_id, str(s.label), float(score[i]), names[i])
        for i, s in enumerate(task.test)
    ]
    m = compute_metrics(parts, threshold, classes)
    if not task.has_ok:
        # every NEU part is defective: classification over all parts, whatever the threshold
        right = sum(1 for i, s in enumerate(task.test) if names[i] == s.label)
        return Row(
            method,
            task.name,
            task.modality,
            seed,
            None,
            None,
            None,
            right / len(task.test),
            adapt_s,
        )
    return Row(
        method,
        task.name,
        task.modality,
        seed,
        m.miss_rate,
        m.false_reject_rate,
        m.auroc,
        m.class_accuracy,
        adapt_s,
    )


# -- baselines --------------------------------------------------------------------------------


def hand_features(samples: Sequence[Sample], modality: str, config: SpectrumConfig) -> np.ndarray:
    """Colour histograms (8 bins a channel), gradient-magnitude and -orientation histograms,
    and the log spectrum itself; each block scaled to unit length."""
    import cv2

    from sensors.spectrum import spectrum_features

    rows = []
    for s in samples:
        blocks = []
        if modality in ("image", "fused") and s.frame is not None:
            img = cv2.resize(s.frame, (128, 128), interpolation=cv2.INTER_AREA)
            color = np.concatenate(
                [np.histogram(img[..., c], bins=8, range=(0, 256))[0] for c in range(3)]
            ).astype(np.float32)
            gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
            gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
            mag, ang = cv2.cartToPolar(gx, gy)
            gm = np.histogram(mag, bins=16, range=(0, 1000))[0].astype(np.float32)
            go = np.histogram(ang, bins=12, range=(0, 2 * np.pi), weights=mag)[0].astype(np.float32)
            for b in (color, gm, go):
                blocks.append(np.sqrt(b) / (np.linalg.norm(np.sqrt(b)) + 1e-9))
        if modality in ("vibration", "fused") and s.vibration is not None:
            v = s.vibration
            spec = spectrum_features(v.samples, v.sample_rate_hz, v.rpm, config)[0].ravel()
            blocks.append(spec / (np.linalg.norm(spec) + 1e-9))
        rows.append(np.concatenate(blocks))
    return np.stack(rows)


def _knn_scores(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, classes: Sequence[str]
) -> tuple[np.ndarray, list[str | None]]:
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mu) / sd, (test_x - mu) / sd
    d = np.sqrt(((b[:, None, :] - a[None, :, :]) ** 2).sum(-1))  # (T, N)
    good = train_y == 0
    if good.any():
        d_good = d[:, good].min(1)
        gg = np.sqrt(((a[good][:, None] - a[good][None]) ** 2).sum(-1))
        np.fill_diagonal(gg, np.inf)
        scale = np.median(gg.min(1)) if good.sum() > 1 else 1.0
        score = 1.0 - np.exp(-d_good / (scale + 1e-9))
    else:
        score = np.ones(len(test_x))
    names: list[str | None] = []
    bad = ~good
    for i in range(len(test_x)):
        if not bad.any():
            names.append(None)
            continue
        j = np.flatnonzero(bad)[np.argmin(d[i, bad])]
        names.append(classes[int(train_y[j]) - 1])
    return score, names


def run_classical(task: Task, train: list[Sample], seed: int) -> Row:
    cfg = line_spectrum(train, SpectrumConfig().n_bins)
    classes = sorted({str(s.label) for s in train if s.label != OK_LABEL})
    y = np.array([0 if s.label == OK_LABEL else classes.index(str(s.label)) + 1 for s in train])
    t0 = time.perf_counter()
    x = hand_features(train, task.modality, cfg)
    fold = stratified_folds(torch.from_numpy(y), 3, seed).numpy()
    oof = np.zeros(len(y))
    for f in range(3):
        oof[fold == f], _ = _knn_scores(x[fold != f], y[fold != f], x[fold == f], classes)
    threshold = (
        line_threshold(oof[y > 0], oof[y == 0], TARGET_MISS, DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE)
        if task.has_ok
        else 0.5
    )
    adapt_s = time.perf_counter() - t0
    score, names = _knn_scores(x, y, hand_features(task.test, task.modality, cfg), classes)
    return _row(
        "classical (histograms + spectrum, kNN)",
        task,
        seed,
        score,
        names,
        threshold,
        classes,
        adapt_s,
    )


def _resnet_input(samples: Sequence[Sample], modality: str, config: SpectrumConfig) -> torch.Tensor:
    """Images at 64 px; the (2, F) spectrum drawn as a 64 x 64 picture; fused: side by side."""
    from models.inputs import frames_to_tensor
    from sensors.spectrum import spectrum_features

    parts = []
    if modality in ("image", "fused"):
        img, _ = frames_to_tensor([s.frame for s in samples], 64)
        parts.append(img)
    if modality in ("vibration", "fused"):
        spec = torch.from_numpy(
            np.stack(
                [
                    spectrum_features(
                        s.vibration.samples, s.vibration.sample_rate_hz, s.vibration.rpm, config
                    )[0]
                    for s in samples
                ]
            )
        )  # type: ignore[union-attr]
        pic = spec.unsqueeze(1).repeat_interleave(32, dim=2)  # (B, 1, 64, F)
        pic = F.interpolate(pic, size=(64, 64)).repeat(1, 3, 1, 1)
        parts.append(pic)
    return torch.cat(parts, dim=3)


def _train_resnet(
    x: torch.Tensor, y: torch.Tensor, n_out: int, seed: int, epochs: int
) -> torch.nn.Module:
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    net = resnet18(num_classes=n_out)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    counts = torch.bincount(y, minlength=n_out).float().clamp_min(1)
    w = (counts.sum() / counts) / n_out
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for i in range(0, len(y), 16):
            b = order[i : i + 16]
            xb = x[b]
            if torch.rand(1) < 0.5:
                xb = xb.flip(3)
            loss = F.cross_entropy(net(xb), y[b], weight=w)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def _resnet_scores(net: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        p = torch.cat([net(x[i : i + 64]).softmax(-1) for i in range(0, len(x), 64)])
    return (1.0 - p[:, 0]).numpy(), p[:, 1:].argmax(-1).numpy()


def run_resnet(task: Task, train: list[Sample], seed: int, epochs: int) -> Row:
    cfg = line_spectrum(train, SpectrumConfig().n_bins)
    classes = sorted({str(s.label) for s in train if s.label != OK_LABEL})
    y = torch.tensor([0 if s.label == OK_LABEL else classes.index(str(s.label)) + 1 for s in train])
    t0 = time.perf_counter()
    x = _resnet_input(train, task.modality, cfg)
    fold = stratified_folds(y, 3, seed)
    oof = np.zeros(len(y))
    for f in range(3):
        net = _train_resnet(x[fold != f], y[fold != f], len(classes) + 1, seed, epochs)
        oof[(fold == f).numpy()], _ = _resnet_scores(net, x[fold == f])
    yn = y.numpy()
    threshold = (
        threshold_for_miss_rate(oof[yn > 0], oof[yn == 0], TARGET_MISS) if task.has_ok else 0.5
    )
    net = _train_resnet(x, y, len(classes) + 1, seed, epochs)
    adapt_s = time.perf_counter() - t0
    score, cls = _resnet_scores(net, _resnet_input(task.test, task.modality, cfg))
    names = [classes[int(c)] for c in cls]
    return _row("ResNet-18 from scratch", task, seed, score, names, threshold, classes, adapt_s)


# -- the table --------------------------------------------------------------------------------


def _fmt(values: Sequence[float | None], pct: bool = False, digits: int = 3) -> str:
    v = [x for x in values if x is not None and not math.isnan(x)]
    if not v:
        return "n/a"
    k = 100.0 if pct else 1.0
    mean = statistics.fmean(v) * k
    sd = statistics.pstdev(v) * k if len(v) > 1 else 0.0
    unit = " %" if pct else ""
    d = 1 if pct else digits
    return f"{mean:.{d}f} ± {sd:.{d}f}{unit}"


def _data_name(task: str) -> str:
    """The table's "data" cell of a task: the synthetic lines together, a real task by name."""
    if not task.startswith("synth-"):
        return task
    return "synthetic (held-out seeds)" + (", good only" if task.endswith(", good only") else "")


def _by_data_inputs_method(rows: Sequence[Row]) -> dict[tuple[str, str, str], list[Row]]:
    """The rows grouped as the tables show them: (data, inputs, method), in first-seen order."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((_data_name(r.task), r.modality, r.method), []).append(r)
    return groups


def table(rows: Sequence[Row]) -> str:
    groups = _by_data_inputs_method(rows)
    header = [
        "data",
        "inputs",
        "method",
        "miss rate",
        "false-reject rate",
        "AUROC",
        "class accuracy",
        "adapt time (s)",
        "runs",
    ]
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for (data, modality, method), rs in groups.items():
        cells = [
            data,
            modality,
            method,
            _fmt([r.miss_rate for r in rs], pct=True),
            _fmt([r.false_reject_rate for r in rs], pct=True),
            _fmt([r.auroc for r in rs]),
            _fmt([r.class_accuracy for r in rs], pct=True),
            _fmt([r.adapt_s for r in rs], digits=0),
            str(len(rs)),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


PAIRED_METRICS = (
    ("auroc", "AUROC", False),
    ("class_accuracy", "class accuracy", True),
    ("false_reject_rate", "false-reject", True),
    ("miss_rate", "miss rate", True),
)


def paired_table(base: Sequence[Row], new: Sequence[Row]) -> tuple[str, int]:
    """Two runs of the same draws compared run by run (line, inputs, seed, method without its
    backbone note): per data and inputs, each metric's mean base -> new and in how many runs
    new is higher / lower. Returns the table and the number of rows left without a partner."""

    def key(r: Row) -> tuple[str, str, int, str]:
        return (r.task, r.modality, r.seed, r.method.split(" (")[0])

    by_key = {key(r): r for r in base}
    groups: dict[tuple[str, str, str], list[tuple[Row, Row]]] = {}
    unpaired = len(base) + len(new)
    for r in new:
        b = by_key.get(key(r))
        if b is None:
            continue
        unpaired -= 2
        data = "synthetic" if r.task.startswith("synth-") else r.task
        groups.setdefault((data, r.modality, key(r)[3]), []).append((b, r))
    header = ["data", "inputs", "method", "runs"] + [name for _, name, _ in PAIRED_METRICS]
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for (data, modality, method), pairs in groups.items():
        cells = [data, modality, method, str(len(pairs))]
        for attr, _, pct in PAIRED_METRICS:
            both = [
                (getattr(b, attr), getattr(n, attr))
                for b, n in pairs
                if getattr(b, attr) is not None and getattr(n, attr) is not None
            ]
            if not both:
                cells.append("n/a")
                continue
            k, d = (100.0, 1) if pct else (1.0, 3)
            mb = statistics.fmean(x for x, _ in both) * k
            mn = statistics.fmean(y for _, y in both) * k
            up = sum(y > x for x, y in both)
            down = sum(y < x for x, y in both)
            unit = " %" if pct else ""
            cells.append(f"{mb:.{d}f} → {mn:.{d}f}{unit} ({up} higher / {down} lower)")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out), unpaired


def per_class_table(rows: Sequence[Row]) -> str:
    """Per (line, inputs, method) and defect class: recall at the line's threshold and each
    source's AUROC, averaged over the seeds; "kept" counts the runs whose adapt kept it."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        if "per_class" in r.extra:
            groups.setdefault((r.task, r.modality, r.method), []).append(r)
    out = []
    for (task, modality, method), rs in groups.items():
        names = sorted({n for r in rs for c in r.extra["per_class"].values() for n in c["auroc"]})
        kept = {n: sum(n in r.extra.get("sources_kept", [n]) for r in rs) for n in names}
        head = [f"{n} (kept {kept[n]}/{len(rs)})" if n in kept else n for n in names]
        out.append(f"\n{task} {modality} {method} ({len(rs)} runs): AUROC of each source alone")
        out.append("| class | n | recall | " + " | ".join(head) + " |")
        out.append("|" + " --- |" * (3 + len(names)))
        for label in sorted({c for r in rs for c in r.extra["per_class"]}):
            cells = [r.extra["per_class"][label] for r in rs if label in r.extra["per_class"]]
            aucs = [statistics.fmean(c["auroc"].get(n, math.nan) for c in cells) for n in names]
            recall = statistics.fmean(c["recall"] for c in cells)
            n = statistics.fmean(c["n"] for c in cells)
            out.append(
                f"| {label} | {n:.0f} | {recall:.0%} | "
                + " | ".join(f"{a:.3f}" for a in aucs)
                + " |"
            )
    return "\n".join(out)


def add_fusion_argument(ap: argparse.ArgumentParser) -> None:
    """`--classifier-fusion`: how our rows' classifier joins the anomaly score."""
    ap.add_argument(
        "--classifier-fusion",
        choices=CLASSIFIER_FUSIONS,
        default="agree_z",
        help="how our rows' classifier joins the anomaly score (models.adapt.AdaptConfig): "
        "agree_z, as `inspect-app adapt` teaches lines now, or max_z, as it did before",
    )


def run_tasks(tasks: Sequence[Task], args: argparse.Namespace) -> list[Row]:
    """Every method of `args.methods` on every task, for each sampling seed: the rows.

    `args` carries `backbone` (pretrained, random or a checkpoint folder), `methods`, `seeds`,
    `samples`, `align`, `template_size`, `classifier_fusion`, `resnet_epochs` and `good_only`,
    as `main` parses them.
    """
    backbone, spec = get_backbone("tiny", warn=True)
    if args.backbone == "random":
        from models.config import BackboneConfig
        from models.line_model import random_backbone

        backbone, spec = random_backbone(BackboneConfig.named("tiny"), seed=0)
    elif args.backbone != "pretrained":
        from models.backbone import InspectBackbone

        backbone = InspectBackbone.from_pretrained(args.backbone).eval()
        spec = {"pretrained": str(args.backbone)}
    print(
        f"backbone: {backbone.config.size_name}, pretrained={spec['pretrained']}, "
        f"torch threads={torch.get_num_threads()}",
        file=sys.stderr,
    )
    tag = "" if args.backbone == "pretrained" else f" ({args.backbone} backbone)"

    def ours(method: str) -> Callable[[Task, list[Sample], int], Row]:
        return lambda t, tr, s: run_ours(
            t, tr, method, s, backbone, args.align, args.template_size, args.classifier_fusion
        )

    runners: dict[str, Callable[[Task, list[Sample], int], Row]] = {
        "prompt": ours("prompt"),
        "lora": ours("lora"),
        "linear": ours("linear"),
        "resnet": lambda t, tr, s: run_resnet(t, tr, s, args.resnet_epochs),
        "classical": run_classical,
    }
    rows: list[Row] = []
    for task in tasks:
        pool = task.pool
        if args.good_only and task.has_ok:
            pool = [s for s in pool if s.label == OK_LABEL]
            task.name += ", good only"
        for seed in args.seeds:
            picked = stratified_sample([s.label for s in pool], args.samples, seed)
            train = [pool[i] for i in picked]
            for method in args.methods:
                row = runners[method](task, train, seed)
                if method in ("prompt", "lora", "linear"):
                    row.method += tag
                rows.append(row)
                print(json.dumps(row.__dict__), file=sys.stderr, flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="2 synthetic lines, 1 seed, prompt + linear + baselines",
    )
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampling/training seeds"
    )
    ap.add_argument(
        "--lines",
        type=int,
        nargs="+",
        default=list(SYNTH_SEEDS),
        help="synthetic line seeds (1-999)",
    )
    ap.add_argument(
        "--methods", nargs="+", default=["prompt", "lora", "linear", "resnet", "classical"]
    )
    ap.add_argument("--modalities", nargs="+", default=["fused", "image", "vibration"])
    ap.add_argument("--no-real", action="store_true", help="skip CWRU and NEU-DET")
    ap.add_argument("--real-only", action="store_true", help="only CWRU and NEU-DET")
    ap.add_argument(
        "--cwru-rate",
        type=float,
        default=None,
        metavar="HZ",
        help="resample CWRU's recordings to HZ before cutting windows (e.g. 8000: a slower "
        "sensor; lines below 10 kHz get fitted spectra, as `inspect-app adapt` fits them)",
    )
    ap.add_argument(
        "--cwru-window",
        type=float,
        default=CWRU_WINDOW_S,
        metavar="S",
        help=f"CWRU window length in seconds (default {CWRU_WINDOW_S:g}; below 0.2 s lines get "
        "spectra fitted to the short windows, as `inspect-app adapt` fits them)",
    )
    ap.add_argument(
        "--align",
        choices=ALIGN_MODES,
        default="auto",
        help="pose alignment + pixel template for our rows, as `inspect-app adapt --align`",
    )
    ap.add_argument(
        "--camera-size",
        type=int,
        default=128,
        metavar="PX",
        help="the synthetic lines' frame size in pixels (default 128, the backbone's size)",
    )
    ap.add_argument(
        "--housing-hz",
        type=float,
        default=None,
        metavar="HZ",
        help="the synthetic lines' machines ring at HZ instead of their drawn 2.3-4.7 kHz "
        "(`synth --housing-hz`): bearing faults of a machine the default envelope band misses",
    )
    ap.add_argument(
        "--template-size",
        type=template_size_arg,
        default="auto",
        metavar="PX|auto",
        help="our rows' pixel template resolution, as `inspect-app adapt --template-size`",
    )
    ap.add_argument(
        "--backbone",
        default="pretrained",
        help="our rows' backbone: pretrained (the shipped checkpoint), random (seeded random "
        "init, to see what pretraining buys) or a checkpoint folder",
    )
    add_fusion_argument(ap)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument(
        "--good-only",
        action="store_true",
        help="teach from good parts only (as from an MVTec AD train/good): the threshold rejects "
        f"{DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE:.0%}% of them out-of-fold, as `inspect-app adapt` "
        "sets it without defective parts; ResNet-18 (a classifier) is left out",
    )
    ap.add_argument("--resnet-epochs", type=int, default=30)
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "inspect-app-fewshot",
        help="where the generated synthetic lines are kept between runs",
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--per-class",
        action="store_true",
        help="also print, per line and defect class, the recall and each anomaly source's and "
        "the classifier's AUROC alone (our rows)",
    )
    ap.add_argument(
        "--table-from",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print one table from the rows of earlier runs' --json files (runs nothing)",
    )
    ap.add_argument(
        "--paired",
        type=Path,
        nargs=2,
        metavar=("BASE_JSON", "NEW_JSON"),
        help="compare two runs of the same draws run by run (e.g. two backbones): each "
        "metric's mean and in how many runs NEW is higher / lower (runs nothing)",
    )
    args = ap.parse_args(argv)
    if args.paired:
        base, new = ([Row(**raw) for raw in json.loads(f.read_text())] for f in args.paired)
        text, unpaired = paired_table(base, new)
        print(text)
        if unpaired:
            print(
                f"{unpaired} rows had no partner (same line, inputs, seed and method) in the "
                "other file and are left out"
            )
        return 0
    if args.table_from:
        earlier = [Row(**raw) for f in args.table_from for raw in json.loads(f.read_text())]
        earlier.sort(key=lambda r: (not r.task.startswith("synth-"), r.task.startswith("neu")))
        print_tables(earlier, args.per_class)
        return 0
    if args.good_only:
        args.methods = [m for m in args.methods if m != "resnet"]
    if args.quick:
        args.lines, args.seeds = args.lines[:2], args.seeds[:1]
        args.methods = [m for m in args.methods if m != "lora"]
        args.resnet_epochs = min(args.resnet_epochs, 10)
    tasks = (
        []
        if args.real_only
        else [
            t
            for t in synthetic_tasks(
                args.cache,
                args.lines,
                pool=120,
                test=120,
                image_size=args.camera_size,
                housing_hz=args.housing_hz,
            )
            if t.modality in args.modalities
        ]
    )
    if not args.no_real:
        tasks += [
            t for t in (cwru_task(args.cwru_window, args.cwru_rate), neu_task(40)) if t is not None
        ]

    report(run_tasks(tasks, args), args)
    return 0


def foretold_table(rows: Sequence[Row]) -> str:
    """How well the out-of-fold rates `adapt` prints foretold the test's, per method and inputs:
    the mean of each, and the mean distance between the two in each run."""
    groups = _by_data_inputs_method(
        [r for r in rows if "out_of_fold" in r.extra and r.false_reject_rate is not None]
    )
    if not groups:
        return ""
    lines = [
        "\nThe out-of-fold rates adapt prints, against the test parts' (mean over runs; "
        "|gap|: the mean distance between the two in a run):",
        "| data | inputs | method | runs | false-reject out-of-fold / test, |gap| "
        "| miss rate out-of-fold / test, |gap| |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for (data, modality, method), rs in groups.items():
        cells = []
        for key in ("false_reject_rate", "miss_rate"):
            pairs = [
                (r.extra["out_of_fold"][key], getattr(r, key))
                for r in rs
                if r.extra["out_of_fold"][key] is not None and getattr(r, key) is not None
            ]
            if not pairs:
                cells.append("n/a")
                continue
            oof, seen = (100 * float(np.mean(v)) for v in zip(*pairs, strict=True))
            gap = 100 * float(np.mean([abs(a - b) for a, b in pairs]))
            cells.append(f"{oof:.1f} / {seen:.1f} %, {gap:.1f}")
        lines.append(f"| {data} | {modality} | {method} | {len(rs)} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def print_tables(rows: Sequence[Row], per_class: bool) -> None:
    """The rows' table, how well their out-of-fold rates foretold the test's (where the rows
    keep them), and with `per_class` the per-class one."""
    print(table(rows))
    foretold = foretold_table(rows)
    if foretold:
        print(foretold)
    if per_class:
        print(per_class_table(rows))


def report(rows: Sequence[Row], args: argparse.Namespace) -> None:
    """Print the rows' tables (`print_tables`); write `args.json` when given."""
    print_tables(rows, args.per_class)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1))


if __name__ == "__main__":
    sys.exit(main())
