"""The data side of pretraining: synthetic lines and real datasets turned into cached arrays.

Sources (`--data` of `inspect-app pretrain`):
- `synthetic`: lines from `sensors.synthetic` with seeds from the pretraining range (1000-99999;
  1-999 are held out for few-shot evaluation, see docs/synthetic.md). Labels and pixel masks
  come from the generator.
- a dataset folder read by `sensors.dataset.LineDataset` (e.g. ../shared/data/neu-det,
  ../shared/data/cwru): its labels, masks or boxes, and vibration recordings cut into windows;
- a cached `.npz` of such a folder, as an earlier run wrote it into its cache: a machine that
  lacks the dataset (a rented GPU, say) trains on the same arrays.

Every source is reduced to the same arrays (image at the backbone's size, pixel mask, spectrum,
label index) and cached as `.npz` in a cache folder outside the repository, so a second run
starts training at once. Each source is split into train / held-out by group (a recording, an
image, a synthetic line), so held-out windows never come from a recording that was trained on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from sensors.dataset import LineDataset, PartRow
from sensors.errors import DataError
from sensors.spectrum import SpectrumConfig, spectrum_features

PRETRAIN_SEEDS = range(1000, 100000)  # docs/synthetic.md: 1-999 held out, 15 is the demo
OK = "ok"
# Real fault names that mean the same physical fault as a synthetic class share its label.
ALIASES = {"inner_race": "bearing_inner", "outer_race": "bearing_outer", "ball": "bearing_ball"}
HELD_OUT_EVERY = 5  # every 5th group of each label is held out


@dataclass
class PretrainArrays:
    """Parts of one source as arrays; a part lacking a modality has zeros and has_* False."""

    name: str
    images: np.ndarray  # (N, S, S, 3) uint8
    masks: np.ndarray  # (N, S, S) uint8, 1 = defect pixel
    has_image: np.ndarray  # (N,) bool
    has_mask: np.ndarray  # (N,) bool: the mask is known (all-zero for a good part)
    spectra: np.ndarray  # (N, 2, F) float32
    has_vibration: np.ndarray  # (N,) bool
    labels: list[str]  # (N,) label names after ALIASES
    image_label_ok: np.ndarray  # (N,) bool: label is visible in the image (else "ok" there)
    vibration_label_ok: np.ndarray  # (N,) bool: label is visible in the vibration
    held_out: np.ndarray  # (N,) bool
    sources: list[str] = field(default_factory=list)  # (N,) source name per part

    def __post_init__(self) -> None:
        if not self.sources:
            self.sources = [self.name] * len(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            images=self.images,
            masks=self.masks,
            has_image=self.has_image,
            has_mask=self.has_mask,
            spectra=self.spectra,
            has_vibration=self.has_vibration,
            labels=np.array(self.labels, dtype=str),
            image_label_ok=self.image_label_ok,
            vibration_label_ok=self.vibration_label_ok,
            held_out=self.held_out,
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, name: str) -> PretrainArrays:
        with np.load(path) as z:
            return cls(
                name=name,
                images=z["images"],
                masks=z["masks"],
                has_image=z["has_image"],
                has_mask=z["has_mask"],
                spectra=z["spectra"],
                has_vibration=z["has_vibration"],
                labels=[str(s) for s in z["labels"]],
                image_label_ok=z["image_label_ok"],
                vibration_label_ok=z["vibration_label_ok"],
                held_out=z["held_out"],
            )

    @classmethod
    def concat(cls, parts: Sequence[PretrainArrays], name: str) -> PretrainArrays:
        return cls(
            name=name,
            images=np.concatenate([p.images for p in parts]),
            masks=np.concatenate([p.masks for p in parts]),
            has_image=np.concatenate([p.has_image for p in parts]),
            has_mask=np.concatenate([p.has_mask for p in parts]),
            spectra=np.concatenate([p.spectra for p in parts]),
            has_vibration=np.concatenate([p.has_vibration for p in parts]),
            labels=[lab for p in parts for lab in p.labels],
            image_label_ok=np.concatenate([p.image_label_ok for p in parts]),
            vibration_label_ok=np.concatenate([p.vibration_label_ok for p in parts]),
            held_out=np.concatenate([p.held_out for p in parts]),
            sources=[src for p in parts for src in p.sources],
        )


def _resize_image(image: np.ndarray, size: int) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def _resize_mask(mask: np.ndarray | None, size: int) -> np.ndarray:
    if mask is None:
        return np.zeros((size, size), np.uint8)
    m = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return (m > 0.25).astype(np.uint8)


def _empty(name: str, n: int, size: int, bins: int) -> PretrainArrays:
    return PretrainArrays(
        name=name,
        images=np.zeros((n, size, size, 3), np.uint8),
        masks=np.zeros((n, size, size), np.uint8),
        has_image=np.zeros(n, bool),
        has_mask=np.zeros(n, bool),
        spectra=np.zeros((n, 2, bins), np.float32),
        has_vibration=np.zeros(n, bool),
        labels=[OK] * n,
        image_label_ok=np.zeros(n, bool),
        vibration_label_ok=np.zeros(n, bool),
        held_out=np.zeros(n, bool),
    )


def synthetic_line(
    seed: int, parts: int, size: int, spectrum: SpectrumConfig, defect_fraction: float = 0.5
) -> PretrainArrays:
    """Generate `parts` parts of synthetic line `seed` (a pretraining seed) as arrays."""
    from sensors.synthetic import draw_labels, make_part, visible_in
    from sensors.synthetic.spec import LineSpec

    if seed not in PRETRAIN_SEEDS:
        msg = f"synthetic pretraining seed {seed} is outside {PRETRAIN_SEEDS} (1-999 held out)"
        raise ValueError(msg)
    spec = LineSpec.from_seed(seed)
    labels = draw_labels(spec, parts, defect_fraction)
    a = _empty(f"synthetic-{seed}", parts, size, spectrum.n_bins)
    a.labels = list(labels)
    for i, label in enumerate(labels):
        part = make_part(spec, i, label)
        if part.image is not None:
            a.images[i] = _resize_image(part.image, size)
            a.masks[i] = _resize_mask(part.mask, size)
            a.has_image[i] = a.has_mask[i] = True
        if part.vibration is not None:
            a.spectra[i] = spectrum_features(
                part.vibration, part.sample_rate_hz, part.rpm, spectrum
            )[0]
            a.has_vibration[i] = True
        a.image_label_ok[i] = label == OK or visible_in(label, "image")
        a.vibration_label_ok[i] = label == OK or visible_in(label, "vibration")
    return a


def _held_out_mask(labels: list[str], groups: list[str]) -> np.ndarray:
    """Every HELD_OUT_EVERY-th group of each label (sorted); a label with one group is split
    in time: its last fifth of parts (at least one) is held out."""
    held = np.zeros(len(labels), bool)
    by_label: dict[str, list[str]] = {}
    for lab, grp in zip(labels, groups, strict=True):
        by_label.setdefault(lab, [])
        if grp not in by_label[lab]:
            by_label[lab].append(grp)
    for lab, grps in by_label.items():
        idx = [i for i, la in enumerate(labels) if la == lab]
        if len(grps) == 1:
            n_held = max(1, len(idx) // HELD_OUT_EVERY)
            held[idx[-n_held:]] = len(idx) > 1
            continue
        chosen = set(sorted(grps)[HELD_OUT_EVERY - 1 :: HELD_OUT_EVERY] or sorted(grps)[-1:])
        for i in idx:
            held[i] = groups[i] in chosen
    return held


def _group(row: PartRow) -> str:
    """A part's group for the held-out split: its recording, its image, else its id."""
    return str(row.vibration or row.image or row.part_id)


def held_out_of_pretraining(ds: LineDataset) -> np.ndarray:
    """(N,) True for the parts of a labelled dataset folder that pretraining holds out.

    `ds` must be opened as pretraining opens it (the same `window_s` for recordings). An
    evaluation on real data that the backbone may have seen must keep to these parts.
    """
    labels = [ALIASES.get(str(r.label), str(r.label)) for r in ds.rows]
    return _held_out_mask(labels, [_group(r) for r in ds.rows])


def dataset_folder(folder: Path, size: int, spectrum: SpectrumConfig) -> PretrainArrays:
    """A labelled dataset folder (labels.csv, MVTec or class folders) as arrays.

    Vibration recordings are cut into windows of `spectrum.window_s`; every window of one
    recording shares its group, so the train / held-out split never divides a recording.
    """
    ds = LineDataset.open(folder, window_s=spectrum.window_s)
    n = len(ds)
    a = _empty(folder.name, n, size, spectrum.n_bins)
    labels: list[str] = []
    groups: list[str] = []
    for i in tqdm(range(n), desc=f"reading {folder.name}", unit="part", leave=False):
        sample = ds[i]
        if sample.label is None:
            msg = f"pretraining needs a label on every part; row {i} has none"
            raise DataError(msg, folder / "labels.csv", i + 2)
        label = ALIASES.get(sample.label, sample.label)
        if sample.frame is not None:
            a.images[i] = _resize_image(sample.frame, size)
            a.has_image[i] = True
            a.image_label_ok[i] = True
            if sample.mask is not None:
                a.masks[i] = _resize_mask(sample.mask, size)
                a.has_mask[i] = True
            elif label == OK:
                a.has_mask[i] = True  # a good part's mask is empty
        if sample.vibration is not None:
            v = sample.vibration
            a.spectra[i] = spectrum_features(v.samples, v.sample_rate_hz, v.rpm, spectrum)[0]
            a.has_vibration[i] = True
            a.vibration_label_ok[i] = True
        labels.append(label)
        groups.append(_group(ds.rows[i]))
    a.held_out = _held_out_mask(labels, groups)
    a.labels = labels
    return a


def _cache_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def synthetic_seeds(first_seed: int, lines: int) -> range:
    """The seeds of `lines` synthetic pretraining lines from `first_seed`; ValueError when any
    leaves the pretraining range (the held-out seeds 1-999 are never trained on)."""
    seeds = range(first_seed, first_seed + lines)
    if seeds[-1] not in PRETRAIN_SEEDS or first_seed not in PRETRAIN_SEEDS:
        msg = f"synthetic seeds {first_seed}-{seeds[-1]} leave the pretraining range "
        msg += (
            f"{PRETRAIN_SEEDS.start}-{PRETRAIN_SEEDS.stop - 1} (1-999 are held out for evaluation)"
        )
        raise ValueError(msg)
    return seeds


def _write_synthetic_line(job: tuple[int, int, int, dict[str, Any], Path]) -> None:
    """Generate one synthetic line into its cache file (a worker process's job)."""
    seed, parts, size, spectrum, path = job
    synthetic_line(seed, parts, size, SpectrumConfig.from_dict(spectrum)).save(path)


def _fill_synthetic_cache(
    jobs: list[tuple[int, int, int, dict[str, Any], Path]], workers: int
) -> None:
    """Generate the missing lines, `workers` processes at a time, with one progress bar."""
    if workers <= 1:
        for job in tqdm(jobs, desc="generating synthetic lines", unit="line"):
            _write_synthetic_line(job)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        done = pool.imap_unordered(_write_synthetic_line, jobs)
        for _ in tqdm(done, total=len(jobs), desc="generating synthetic lines", unit="line"):
            pass


def load_sources(
    sources: Sequence[str],
    cache: Path,
    size: int,
    spectrum: SpectrumConfig,
    synthetic_lines: int,
    parts_per_line: int,
    first_seed: int = 1000,
    workers: int = 1,
) -> PretrainArrays:
    """All `sources` ("synthetic", dataset folders or their cached `.npz`) as one PretrainArrays,
    cached in `cache`; missing synthetic lines are generated by `workers` processes.

    Synthetic lines use seeds first_seed, first_seed+1, ...; none is held out (held-out
    synthetic evaluation uses the reserved seeds 1-999 instead).
    """
    cache.mkdir(parents=True, exist_ok=True)
    loaded: list[PretrainArrays] = []
    spec_key = json.dumps(spectrum.to_dict(), sort_keys=True)
    for source in sources:
        if source == "synthetic":
            seeds = synthetic_seeds(first_seed, synthetic_lines)
            key = _cache_key(parts_per_line, size, spec_key)
            paths = {seed: cache / f"synthetic-{seed}-{key}.npz" for seed in seeds}
            jobs = [
                (seed, parts_per_line, size, spectrum.to_dict(), path)
                for seed, path in paths.items()
                if not path.is_file()
            ]
            _fill_synthetic_cache(jobs, workers)
            for seed in tqdm(seeds, desc="reading synthetic lines", unit="line", leave=False):
                loaded.append(PretrainArrays.load(paths[seed], f"synthetic-{seed}"))
            continue
        if source.endswith(".npz"):
            path = Path(source)
            if not path.is_file():
                msg = f"--data {source!r}: no such cached arrays file"
                raise FileNotFoundError(msg)
            try:
                arrays = PretrainArrays.load(path, re.sub(r"-[0-9a-f]{12}$", "", path.stem))
            except (OSError, KeyError, ValueError) as exc:
                msg = f"--data {source!r}: not a pretraining arrays file ({exc})"
                raise ValueError(msg) from exc
            if arrays.images.shape[1] != size or arrays.spectra.shape[-1] != spectrum.n_bins:
                msg = f"--data {source!r}: images of {arrays.images.shape[1]} px and "
                msg += f"{arrays.spectra.shape[-1]} spectrum bins, but this backbone needs "
                msg += f"{size} px and {spectrum.n_bins} bins"
                raise ValueError(msg)
            loaded.append(arrays)
            continue
        folder = Path(source)
        if not folder.is_dir():
            msg = f"--data {source!r}: expected `synthetic`, a dataset folder or a cached .npz"
            raise FileNotFoundError(msg)
        key = _cache_key(str(folder.resolve()), size, spec_key, HELD_OUT_EVERY)
        path = cache / f"{folder.name}-{key}.npz"
        if not path.is_file():
            dataset_folder(folder, size, spectrum).save(path)
        loaded.append(PretrainArrays.load(path, folder.name))
    if not loaded:
        msg = "no pretraining data: pass --data synthetic and/or dataset folders"
        raise ValueError(msg)
    return PretrainArrays.concat(loaded, "+".join(sources))
