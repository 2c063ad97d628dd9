"""Teach a line from a labeled dataset folder, and measure a line on one (adapt / evaluate).

`teach_line` is what `inspect-app adapt` runs: draw a stratified sample of parts, read them
(a bad file stops it, naming file and row), adapt the frozen backbone (models.adapt), set the
threshold on the out-of-fold scores to meet the target miss rate, and save a new version of
the line (inspect_app.lines). `evaluate_line` is `inspect-app evaluate`: every part scored, a
part that cannot be read counted as FAIL and listed, the DESIGN §5 metrics computed.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspect_app.align import align_adapt_inputs, heatmaps_to_frames
from inspect_app.backends.base import Backend, BackendError
from inspect_app.backends.torch_backend import TorchBackend
from inspect_app.defaults import DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE, DEFAULT_TARGET_MISS_RATE
from inspect_app.lines import (
    LineCard,
    _weights_hash,
    line_window_s,
    load_line_model,
    write_version,
)
from inspect_app.metrics import (
    PartResult,
    Report,
    compute_metrics,
    line_threshold,
    miss_tradeoff,
)
from inspect_app.pipeline import input_problem
from inspect_app.preprocess import (
    line_modalities,
    prepare_batch,
    small_frames,
    small_frames_note,
)
from models.adapt import AdaptConfig, AdaptData, AdaptResult, adapt_line
from models.backbone import InspectBackbone
from models.inputs import ModelInputs
from models.line_model import ABSENT_SCORE
from sensors.camera import FrameFormat, Roi
from sensors.dataset import LineDataset, PartRow
from sensors.errors import DataError
from sensors.sample import OK_LABEL, Sample
from sensors.spectrum import SpectrumConfig

MIN_PARTS_PER_CLASS = 3  # fewer cannot be both learned from and cross-validated
# `--template-size auto` compares registered frames at up to this many times the backbone's
# image size (256 px for `tiny`): on five development lines the template alone went from AUROC
# 0.910 at 128 px to 0.940 at 256 px (models.template.TemplateConfig.at_scale)
MAX_AUTO_TEMPLATE_SCALE = 2


@dataclass
class TeachOptions:
    """`inspect-app adapt`'s options."""

    samples: int = 50
    method: str = "prompt"
    seed: int = 0
    target_miss_rate: float = DEFAULT_TARGET_MISS_RATE
    # used only when the sample holds no defective part (`cross_validated_report`)
    target_false_reject_rate: float = DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE
    window_s: float | None = None
    # the vibration envelope's band (low, high) in Hz, where the machine's bearing rings; None:
    # 2-5 kHz, moved where the good parts ring when that is clearly elsewhere (line_spectrum)
    envelope_band_hz: tuple[float, float] | None = None
    backbone_size: str = "tiny"
    show_progress: bool = True
    align: str = "auto"  # pose alignment + pixel template: auto | on | off (inspect_app.align)
    align_motion: str = "ecc-euclidean"  # or "ecc-affine" (parts at varying camera distance)
    # the pixel template's resolution: "auto" (frames large enough and registered: up to
    # MAX_AUTO_TEMPLATE_SCALE x the backbone's size) or pixels, a multiple of the backbone's size
    template_size: int | str = "auto"
    # the bits the line's 16-bit frames fill when known beforehand (`adapt --from-db`: the
    # line's own, its corrected frames having been written as 8-bit); None: from the parts
    image_bits: int | None = None
    roi: Roi | None = None  # the region of interest every frame is cropped to (None: whole)
    # make the new version the line's active one (False: saved beside it, to be checked with
    # `evaluate --version` and switched to with `inspect-app lines --activate`)
    activate: bool = True
    adapt: AdaptConfig = field(default_factory=AdaptConfig)


@dataclass
class TeachResult:
    """A saved line version and how it was measured."""

    folder: Path
    card: LineCard
    report: Report
    seconds: float
    n_parts: int


def check_backbone_name(size: str) -> None:
    """Raise ValueError, naming the choices, for a name that is neither a shipped checkpoint nor
    a registered size; cheap, for commands that check their arguments before any work."""
    from models.backbone import all_shipped_checkpoints
    from models.config import SIZES

    shipped = all_shipped_checkpoints()
    if size not in shipped and size not in SIZES:
        msg = (
            f"unknown backbone {size!r}: shipped checkpoints are {', '.join(shipped) or 'none'}; "
            f"registered sizes are {', '.join(sorted(SIZES))}"
        )
        raise ValueError(msg)


def get_backbone(size: str = "tiny", warn: bool = True) -> tuple[InspectBackbone, dict[str, Any]]:
    """The shipped pretrained backbone `size` (a size or an earlier checkpoint's name); a seeded
    random one of a registered size, with a loud warning, if its checkpoint is missing.

    Raises ValueError for a name that is neither a shipped checkpoint nor a registered size.
    """
    from models.backbone import load_pretrained
    from models.config import BackboneConfig
    from models.line_model import random_backbone

    check_backbone_name(size)
    try:
        backbone = load_pretrained(size)
        spec: dict[str, Any] = {"size": size, "pretrained": True}
    except FileNotFoundError as exc:
        if warn:
            print(
                f"WARNING: {exc}. Using a RANDOMLY INITIALISED '{size}' backbone: the line model "
                "will work but detect far worse than with the pretrained one.",
                file=sys.stderr,
            )
        backbone, spec = random_backbone(BackboneConfig.named(size), seed=0)
    spec["sha256"] = backbone_hash(backbone)
    return backbone, spec


def backbone_hash(backbone: InspectBackbone) -> str:
    """sha256 over the backbone's weights (names and bytes, in name order)."""
    return _weights_hash(backbone)


def stratified_sample(
    labels: Sequence[str | None], n: int, seed: int, min_per_class: int = MIN_PARTS_PER_CLASS
) -> list[int]:
    """Indices of `n` labeled parts, every label present, in proportion to how common it is,
    except that good parts (`ok`) make at least half the sample where the data has that many:
    the anomaly score, its standardization and the false-reject side of the threshold are all
    learned from the good parts, and a defect library with few good parts would starve them.

    Raises ValueError naming a class with fewer than `min_per_class` parts, or when `n` cannot
    hold `min_per_class` of every class.
    """
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        if label is not None:
            by_label.setdefault(label, []).append(i)
    if not by_label:
        msg = "no labeled parts: adapt needs a `label` column (ok or a defect class)"
        raise ValueError(msg)
    for label, idx in sorted(by_label.items()):
        if len(idx) < min_per_class:
            msg = (
                f"class {label!r} has only {len(idx)} part(s); adapt needs at least "
                f"{min_per_class} per class to learn it and check it: label more, relabel them "
                "into a broader class, or leave them out of the adapt data (a defect kind the "
                "line was never taught is still caught by its anomaly score, and `evaluate` "
                "counts it)"
            )
            raise ValueError(msg)
    n_total = sum(len(v) for v in by_label.values())
    n = min(n, n_total)
    if n < min_per_class * len(by_label):
        msg = (
            f"--samples {n} is too few for {len(by_label)} classes: need at least "
            f"{min_per_class * len(by_label)} ({min_per_class} per class)"
        )
        raise ValueError(msg)
    sizes = {k: len(v) for k, v in by_label.items()}
    n_ok = sizes.get(OK_LABEL, 0)
    if n_ok and n_ok * n / n_total < n // 2:  # some defects there, or the share would be n
        defects = {k: v for k, v in sizes.items() if k != OK_LABEL}
        room = n - min_per_class * len(defects)  # every defect class keeps its floor
        take = max(min_per_class, min(n_ok, n // 2, room))
        alloc = _allocate(defects, n - take, min_per_class) | {OK_LABEL: take}
    else:
        alloc = _allocate(sizes, n, min_per_class)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for k in sorted(by_label):
        drawn = rng.choice(np.array(by_label[k]), size=alloc[k], replace=False)
        chosen += sorted(int(i) for i in drawn)
    return sorted(chosen)


def _allocate(sizes: dict[str, int], n: int, min_per_class: int) -> dict[str, int]:
    """How many of each class to draw for `n` in all: in proportion to `sizes`, at least
    `min_per_class` each, largest remainders first; never more than a class has."""
    total = sum(sizes.values())
    quota = {k: max(min_per_class, size * n / total) for k, size in sizes.items()}
    alloc = {k: min(sizes[k], int(q)) for k, q in quota.items()}
    order = sorted(sizes, key=lambda k: quota[k] - int(quota[k]), reverse=True)
    while sum(alloc.values()) > n:
        k = max(alloc, key=lambda c: alloc[c] - min_per_class)
        alloc[k] -= 1
    while sum(alloc.values()) < n:
        grew = False
        for k in order:
            if sum(alloc.values()) < n and alloc[k] < sizes[k]:
                alloc[k] += 1
                grew = True
        if not grew:
            break
    return alloc


def adapt_rows(ds: LineDataset) -> list[int]:
    """Rows adapt may draw from: labeled, and not marked `split=test`."""
    return [i for i, r in enumerate(ds.rows) if r.label is not None and r.split != "test"]


def evaluate_rows(ds: LineDataset) -> list[int]:
    """Rows evaluate scores: the `split=test` rows when any row has a split, else every row."""
    if any(r.split == "test" for r in ds.rows):
        return [i for i, r in enumerate(ds.rows) if r.split == "test"]
    return list(range(len(ds.rows)))


def _named(s: Sample, row: PartRow) -> str:
    """A part as an error names it: id, row of labels.csv and file, label."""
    where = [f"row {row.row}"] if row.row is not None else []
    where += [str(row.where)] if row.where is not None else []
    return f"{s.part_id} ({', '.join(where)}, labeled {s.label})"


def refuse_uninspectable_parts(
    samples: Sequence[Sample], rows: Sequence[PartRow], data: Path
) -> None:
    """Raises ValueError naming the parts of the adapt sample the line could not inspect
    (`pipeline.input_problem`: a flat or clipped vibration window, a uniform frame): on the
    line each would be a FAULT, and taught as a good part it would teach the line that a dead
    or overloaded sensor is good."""
    bad = [
        f"{_named(s, row)}: {why}"
        for s, row in zip(samples, rows, strict=True)
        if (why := input_problem(s))
    ]
    if bad:
        msg = (
            f"{len(bad)} part(s) of the adapt sample from {data} could not be inspected on the "
            f"line, so they cannot teach it: {'; '.join(bad[:5])}{'; ...' if len(bad) > 5 else ''}"
            ". Fix the sensor and capture them again, or remove them from labels.csv (or the "
            "folder)"
        )
        raise ValueError(msg)


def refuse_repeated_parts(
    samples: Sequence[Sample], rows: Sequence[PartRow], data: Path
) -> list[str]:
    """The parts' reading digests, once no two parts of the sample read the same.

    Two rows that read the same (one file listed twice, or a copy under another name) are one
    part taught twice: in cross-validation one copy is scored by a model that holds the other,
    so the rates adapt reports would flatter the line. Raises ValueError naming them."""

    seen: dict[str, str] = {}
    repeats: list[str] = []
    for s, row in zip(samples, rows, strict=True):
        digest = s.reading_digest()
        if digest is None:
            continue
        if digest in seen:
            repeats.append(f"{_named(s, row)} reads the same as {seen[digest]}")
        else:
            seen[digest] = _named(s, row)
    if repeats:
        msg = (
            f"{len(repeats)} part(s) of the adapt sample from {data} repeat another part's "
            f"reading sample for sample: {'; '.join(repeats[:5])}"
            f"{'; ...' if len(repeats) > 5 else ''}. One part taught twice is scored against "
            "itself in cross-validation and flatters the rates adapt reports: remove the copies "
            "from labels.csv (or the folder)"
        )
        raise ValueError(msg)
    return sorted(seen)


def load_parts(ds: LineDataset, indices: Sequence[int], strict: bool) -> list[Sample]:
    """Read parts; strict raises DataError naming file and row, else faults are kept."""
    return [ds.load(i, strict=strict) for i in indices]


def batched_inputs(samples: Sequence[Sample], card: Any, batch: int = 64) -> ModelInputs:
    """`prepare_batch` over many parts, joined."""
    chunks = [
        prepare_batch(samples[i : i + batch], card, partial=True)
        for i in range(0, len(samples), batch)
    ]

    def cat(name: str) -> torch.Tensor | None:
        ts = [getattr(c, name) for c in chunks]
        return None if ts[0] is None else torch.cat(ts)

    return ModelInputs(
        cat("image"), cat("spectrum"), cat("image_present"), cat("vibration_present")
    )


def template_scale(
    samples: Sequence[Sample], backbone_size: int, template_size: int | str, aligned: bool
) -> int:
    """How many times the backbone's image size a line's frames are compared at (the template).

    "auto": the largest whole multiple the smallest adapt frame holds, at most
    `MAX_AUTO_TEMPLATE_SCALE`, and 1 on a line that is not registered (no template). A size in
    pixels must be a multiple of the backbone's, not larger than the frames, and needs the
    parts registered.
    """
    sides = [min(s.frame.shape[:2]) for s in samples if s.frame is not None]
    if template_size == "auto":
        if not aligned or not sides:
            return 1
        return max(1, min(MAX_AUTO_TEMPLATE_SCALE, min(sides) // backbone_size))
    size = int(template_size)
    if size <= 0 or size % backbone_size:
        msg = (
            f"template size {size} px: it must be a multiple of the backbone's image size "
            f"({backbone_size} px), e.g. {backbone_size} or {2 * backbone_size}"
        )
        raise ValueError(msg)
    if size > backbone_size and not aligned:
        msg = (
            f"template size {size} px: the pixel template needs the parts registered, and "
            "this line's are not (--align off, or the good parts do not register)"
        )
        raise ValueError(msg)
    if sides and size > min(sides):
        msg = (
            f"template size {size} px is larger than the smallest adapt frame "
            f"({min(sides)} px): it would compare enlarged pixels; use at most that"
        )
        raise ValueError(msg)
    return size // backbone_size


def prepare_adapt_inputs(
    samples: Sequence[Sample],
    card: Any,
    good: torch.Tensor,
    align: str = "auto",
    motion: str = "ecc-euclidean",
    template_size: int | str = "auto",
) -> tuple[ModelInputs, int]:
    """The adapt parts' model inputs, registered when the line gets an alignment, at the
    template's resolution (`template_scale`), and that scale.

    `card.image_size` (the backbone's size on entry) becomes the line's input size and
    `card.align` its alignment; `card.align_refused` says why `--align auto` left it off. The
    alignment (its reference) stays at the backbone's size, as `--align auto` was calibrated;
    larger frames are registered through it (`register`).
    """
    inputs = batched_inputs(samples, card)
    inputs, alignment, card.align_refused = align_adapt_inputs(inputs, good, align, motion)
    scale = template_scale(samples, card.image_size, template_size, alignment is not None)
    if alignment is not None and scale > 1:
        card.image_size *= scale
        inputs = batched_inputs(samples, card)
        assert inputs.image is not None  # the alignment was made from these parts' frames
        image, reg = alignment.register(inputs.image, inputs.image_present)
        inputs = dataclasses.replace(inputs, image=image, frame_warps=reg.warps)
    if alignment is not None:
        # a good part that does not register would be a FAULT on the line, and its frame,
        # left as it was, would blur the good parts' template (`--align on` only: `auto`
        # leaves the alignment off then); a defective one is rejected either way
        unregistered = [
            s.part_id
            for s, warp, ok in zip(samples, inputs.frame_warps or [], good.tolist(), strict=True)
            if ok and s.frame is not None and warp is None
        ]
        if unregistered:
            msg = (
                f"{len(unregistered)} good adapt part(s) could not be registered onto the "
                f"line's reference part ({', '.join(unregistered[:5])}"
                f"{', ...' if len(unregistered) > 5 else ''}): on the line such parts would "
                "be FAULT. Check them (another product, a part misplaced, the camera moved), "
                "remove them from the adapt data, or use --align off for a product that does "
                "not register"
            )
            raise ValueError(msg)
        card.align = alignment.to_dict()
    return inputs, scale


def teach_line(home: Path, line: str, data: Path, options: TeachOptions) -> TeachResult:
    """Adapt line `line` from `data` and save it as the line's new active version."""
    from inspect_app.home import line_dir

    line_dir(home, line)  # refuse a bad name before any work
    t0 = time.perf_counter()
    ds = LineDataset.open(data, window_s=options.window_s)
    pool = adapt_rows(ds)
    labels = [ds.rows[i].label for i in pool]
    try:
        picked = [pool[i] for i in stratified_sample(labels, options.samples, options.seed)]
    except ValueError as exc:
        recordings = [ds.rows[i] for i in pool if ds.rows[i].image is None]
        if options.window_s is None and recordings and len(recordings) == len(pool):
            msg = (
                f"{exc}. The parts of {data} are vibration recordings: if each is a long "
                "recording of one condition, --window-s S cuts it into parts of S seconds "
                "(e.g. --window-s 0.25 makes 40 parts of a 10 s recording)"
            )
            raise ValueError(msg) from exc
        raise
    ds.frames = FrameFormat(options.image_bits or line_image_bits(ds, picked), options.roi)
    samples = load_parts(ds, picked, strict=True)
    refuse_uninspectable_parts(samples, [ds.rows[i] for i in picked], data)
    digests = refuse_repeated_parts(samples, [ds.rows[i] for i in picked], data)
    modalities = line_modalities(samples)
    if options.roi is not None and "image" not in modalities:
        msg = f"--roi crops camera frames, and the parts in {data} have none"
        raise ValueError(msg)
    classes = sorted({s.label for s in samples if s.label and s.label != OK_LABEL})
    backbone, spec = get_backbone(options.backbone_size, warn=True)
    bins = backbone.config.spectrum_bins
    spectrum_cfg, band_moved_by = line_spectrum_fit(
        samples, bins, options.window_s, options.envelope_band_hz
    )
    card = LineCard(
        line=line,
        method=options.method,
        classes=classes,
        threshold=0.5,
        modalities=modalities,
        image_size=backbone.config.image_size,
        spectrum=spectrum_cfg.to_dict(),
        backbone=spec,
        image_bits=ds.frames.bits,
        roi=None if options.roi is None else options.roi.as_list(),
    )
    label_index = torch.tensor(
        [0 if s.label == OK_LABEL else classes.index(str(s.label)) + 1 for s in samples]
    )
    inputs, scale = prepare_adapt_inputs(
        samples,
        card,
        label_index == 0,
        options.align,
        options.align_motion,
        options.template_size,
    )
    cfg = options.adapt
    cfg.image_template = bool(card.align)
    cfg.image_scale = scale
    cfg.target_miss_rate = options.target_miss_rate
    cfg.method = options.method
    cfg.seed = options.seed
    result = adapt_line(
        backbone,
        AdaptData(inputs, label_index, classes, modalities),
        cfg,
        show_progress=options.show_progress,
    )
    report = cross_validated_report(
        result, samples, classes, options.target_miss_rate, options.target_false_reject_rate
    )
    card.threshold = report.threshold
    card.metrics = report.as_dict()
    card.metrics["validation"] = (
        f"{cfg.folds}-fold cross-validation on the {len(samples)} adapt parts (out-of-fold scores)"
    )
    card.metrics["adapt_seconds"] = round(time.perf_counter() - t0, 1)
    card.metrics.update(threshold_evidence(result, samples))
    settings = result.model.settings
    settings.backbone = {k: v for k, v in spec.items() if k != "sha256"}
    card.model = settings.to_dict()
    card.adapt = {
        "data": str(Path(data).resolve()),
        "samples": len(samples),
        "seed": options.seed,
        "target_miss_rate": options.target_miss_rate,
        "threshold_rule": threshold_rule(samples, options),
        "window_s": options.window_s,
        "folds": cfg.folds,
        "epochs": cfg.epochs,
        "part_ids": [s.part_id for s in samples],
        # what the parts read: evaluate and calibrate leave out copies of them in any folder
        "digests": digests,
        "class_counts": dict(Counter(str(s.label) for s in samples)),
        "align": options.align,
    }
    frame_px = typical_frame_px(samples)
    if frame_px is not None:
        card.adapt["frame_px"] = frame_px
    if spectrum_cfg.psd_cutoff_hz is not None:  # fitted to vibration sampled below 10 kHz
        card.adapt["spectrum_fitted_to_hz"] = lowest_sample_rate(samples)
    if options.envelope_band_hz is not None:
        card.adapt["envelope_band_given_hz"] = list(spectrum_cfg.env_band_hz)
    elif band_moved_by is not None:  # SpectrumConfig.resonance_fit
        card.adapt["envelope_band_moved_hz"] = list(spectrum_cfg.env_band_hz)
        # the good parts' power alone, or (a second mode nearly as strong) the labeled parts
        card.adapt["envelope_band_moved_by"] = band_moved_by
    if spectrum_cfg.welch_segment_s < SpectrumConfig().welch_segment_s:  # short windows
        card.adapt["spectrum_fitted_to_window_s"] = round(spectrum_cfg.window_s, 6)  # fit_window

    def write(tmp: Path) -> None:
        result.model.save(tmp)
        if result.peft_model is not None:
            result.peft_model.save_pretrained(str(tmp / "adapter"))  # type: ignore[operator]

    folder = write_version(home, line, card, write, activate=options.activate)
    return TeachResult(folder, card, report, time.perf_counter() - t0, len(samples))


def typical_frame_px(samples: Sequence[Sample]) -> list[int] | None:
    """[width, height] of the adapt parts' frames as the line sees them (after its region of
    interest; the median of each), None without frames."""
    sizes = [s.frame.shape[:2] for s in samples if s.frame is not None]
    if not sizes:
        return None
    heights, widths = zip(*sizes, strict=True)
    return [int(np.median(widths)), int(np.median(heights))]


def line_image_bits(ds: LineDataset, rows: Sequence[int]) -> int | None:
    """The bits a line's 16-bit frames fill, from the adapt parts `rows` (their brightest
    sample, or a PNG's sBIT): 10, 12 or 14 for a camera that saves Mono10/12/14 in 16-bit files,
    read so from then on; None for 8-bit frames and 16-bit ones at full scale. A frame of the
    running line brighter than that saturates (and looks unlike every taught part)."""
    bits = ds.image_sample_bits(rows)
    return bits if 8 < bits < 16 else None


def line_spectrum(
    samples: Sequence[Sample],
    bins: int,
    window_s: float | None = None,
    envelope_band_hz: tuple[float, float] | None = None,
) -> SpectrumConfig:
    """`line_spectrum_fit`'s config."""
    return line_spectrum_fit(samples, bins, window_s, envelope_band_hz)[0]


def line_spectrum_fit(
    samples: Sequence[Sample],
    bins: int,
    window_s: float | None = None,
    envelope_band_hz: tuple[float, float] | None = None,
) -> tuple[SpectrumConfig, str | None]:
    """The spectra of a line taught on `samples`: `bins` bins, windows of `window_s` when
    given, fitted to the lowest vibration sample rate among them (`lowest_sample_rate`;
    unchanged at 10 kHz and above), to their shortest window (`shortest_window`; unchanged
    at 0.2 s and longer) and to where the good parts' machine rings (`fit_resonance`: the
    envelope band moves only where the sensor measures well above it and the power is clearly
    elsewhere), or demodulating `envelope_band_hz` when given (`with_envelope_band`). With
    it, what moved the envelope band (`SpectrumConfig.resonance_fit`; None where it did not)."""
    config = SpectrumConfig(psd_bins=bins, env_bins=bins)
    if window_s:
        config = dataclasses.replace(config, window_s=window_s)
    rate = lowest_sample_rate(samples)
    if rate is not None:
        config = config.fit_sample_rate(rate)
    shortest = shortest_window(samples)
    if shortest is not None:
        try:
            config = config.fit_window(shortest[0])
        except ValueError as err:
            msg = f"part {shortest[1]}: {err}"
            raise ValueError(msg) from None
    if envelope_band_hz is not None:
        return config.with_envelope_band(envelope_band_hz, rate), None
    vibrating = [
        (s.vibration.samples, s.vibration.sample_rate_hz, s.label) for s in samples if s.vibration
    ]
    good = [(x, r) for x, r, label in vibrating if label == OK_LABEL]
    defective = [(x, r) for x, r, label in vibrating if label != OK_LABEL]
    if not good:
        return config.resonance_fit(defective, rate)
    return config.resonance_fit(good, rate, defective)


def threshold_rule(samples: Sequence[Sample], options: TeachOptions) -> str:
    """How the line's threshold was set, in words (line.json's `adapt.threshold_rule`)."""
    if any(s.label != OK_LABEL for s in samples):
        return f"miss rate {options.target_miss_rate:g} (out-of-fold)"
    return (
        f"false-reject rate {options.target_false_reject_rate:g} (out-of-fold; good parts "
        "only: no miss rate can be measured)"
    )


def shortest_window(samples: Sequence[Sample]) -> tuple[float, str] | None:
    """(seconds, part id) of the shortest vibration window among `samples` (None when none
    has vibration): a line's spectra are fitted to it (`SpectrumConfig.fit_window`)."""
    windows = [
        (s.vibration.samples.shape[-1] / s.vibration.sample_rate_hz, s.part_id)
        for s in samples
        if s.vibration is not None
    ]
    return min(windows) if windows else None


def lowest_sample_rate(samples: Sequence[Sample]) -> float | None:
    """The lowest vibration sample rate among `samples` (None when none has vibration): the
    line's spectra are fitted to it (`SpectrumConfig.fit_sample_rate`), so every part of the
    line, whatever its own rate, is measured on the same band."""
    rates = [s.vibration.sample_rate_hz for s in samples if s.vibration is not None]
    return min(rates) if rates else None


def cross_validated_report(
    result: AdaptResult,
    samples: Sequence[Sample],
    classes: Sequence[str],
    target: float,
    target_false_reject: float = DEFAULT_GOOD_ONLY_FALSE_REJECT_RATE,
) -> Report:
    """Threshold for the target miss rate on the out-of-fold scores, and the metrics it gives.

    Without a defective part among `samples` (good parts only, as in an MVTec AD `train/good`)
    no miss rate can be measured: the threshold then rejects `target_false_reject` of the good
    parts out-of-fold (`threshold_for_false_reject_rate`), not only those above the highest.
    """
    if result.oof is None:
        msg = "cross-validation is needed to set the threshold (folds >= 2)"
        raise ValueError(msg)
    scores = result.oof.defect_score.numpy()
    defective = np.array([s.label != OK_LABEL for s in samples])
    threshold = line_threshold(scores[defective], scores[~defective], target, target_false_reject)
    parts = [
        PartResult(
            part_id=s.part_id,
            label=str(s.label),
            defect_score=float(scores[i]),
            predicted_class=classes[int(result.oof.predicted_class[i])]
            if int(result.oof.predicted_class[i]) >= 0
            else None,
        )
        for i, s in enumerate(samples)
    ]
    return compute_metrics(parts, threshold, classes)


# how many of the weakest defective adapt parts `threshold_evidence` names
WEAKEST_DEFECTS = 3


def threshold_evidence(
    result: AdaptResult, samples: Sequence[Sample], count: int = WEAKEST_DEFECTS
) -> dict[str, Any]:
    """Which adapt parts hold the threshold down, and what letting them pass would buy.

    The threshold sits just under the weakest defective part's out-of-fold score, so one
    defect that scores like a good part (a flaw its sensor cannot pick up, or a wrong label)
    sets the false-reject rate of the whole line. `weakest_defects`: the `count` defective
    parts with the lowest out-of-fold scores, each with the share of good parts scoring at
    least as high; `miss_tradeoff`: the threshold rule allowing 0..`count` misses and the
    out-of-fold rates it gives (`metrics.miss_tradeoff`). Both {} without cross-validation or
    without defective or good parts.
    """
    if result.oof is None:
        return {}
    scores = result.oof.defect_score.numpy().astype(np.float64)
    defective = np.array([s.label != OK_LABEL for s in samples])
    good = scores[~defective]
    if not defective.any() or good.size == 0:
        return {}
    order = [i for i in np.argsort(scores, kind="stable") if defective[i]][:count]
    weakest = [
        {
            "part_id": samples[i].part_id,
            "label": str(samples[i].label),
            "defect_score": float(scores[i]),
            "good_at_or_above": float((good >= scores[i]).mean()),
            **_strongest_source(result.oof.sources, int(i)),
        }
        for i in order
    ]
    tradeoff = miss_tradeoff(scores[defective], good, count)
    return {
        "weakest_defects": weakest,
        "miss_tradeoff": [row.as_dict() for row in tradeoff],
    }


def _strongest_source(sources: dict[str, Any], i: int) -> dict[str, Any]:
    """The source that scored part `i` highest out of fold, and how high (good-part spreads):
    near 0, no source saw the part as unusual (its sensor cannot pick the flaw up, or the label
    is wrong). {} without per-source scores or where the part has no sensor reading."""
    found = {name: float(score[i]) for name, score in sources.items()}
    found = {name: z for name, z in found.items() if z > ABSENT_SCORE}
    if not found:
        return {}
    name = max(found, key=lambda n: found[n])
    return {"strongest_source": name, "strongest_spreads": found[name]}


@dataclass
class EvaluateOptions:
    """`inspect-app evaluate`'s options."""

    version: str | None = None
    window_s: float | None = None
    batch_size: int = 1
    include_adapt_parts: bool = False
    show_progress: bool = True
    # what scores the parts: "torch" (the line model), or what a line runs on the floor:
    # "onnxruntime" (the version's exported graph) or "tensorrt" (its engine, on a Jetson)
    backend: str = "torch"
    threads: int | None = None  # the backend's CPU threads (None: its default)
    precision: str = "fp32"  # which exported graph onnxruntime runs (fp32, fp16, int8)


def evaluate_line(home: Path, line: str, data: Path, options: EvaluateOptions) -> Report:
    """Score every part of `data` with the line's model; DESIGN §5 metrics."""
    from tqdm import tqdm

    model, card, folder = load_line_model(home, line, options.version)
    runner = scorer_for(home, line, folder.name, model, options)
    ds = LineDataset.open(
        data,
        window_s=line_window_s(options.window_s, card),
        frames=FrameFormat.of_line(card.image_bits, card.roi),
    )
    rows = evaluate_rows(ds)
    excluded = 0
    resolved = str(Path(data).resolve())  # how line.json names the folders it was set on
    same_data = resolved == card.adapt.get("data")
    if same_data and not options.include_adapt_parts:
        used = set(card.adapt.get("part_ids", []))
        keep = [i for i in rows if ds.rows[i].part_id not in used]
        excluded = len(rows) - len(keep)
        rows = keep
    unlabeled = [ds.rows[i].row or i for i in rows if ds.rows[i].label is None]
    if unlabeled:
        raise DataError(
            f"evaluate needs a label on every part; {len(unlabeled)} have none "
            f"(first at row {unlabeled[0]})",
            ds.table or ds.folder,
        )
    if not rows:
        msg = f"no parts to evaluate in {data}"
        raise ValueError(msg)
    results: list[PartResult] = []
    n_small, small_example = 0, None  # a count and one part, not every small frame kept
    mask_problems: list[dict[str, str]] = []
    # copies of the adapt parts under other names or in other folders (lines taught before
    # the digests were recorded have none)
    taught = set() if options.include_adapt_parts else set(card.adapt.get("digests", []))
    copies: list[str] = []
    bar = tqdm(total=len(rows), unit="part", desc="evaluate", disable=not options.show_progress)
    with torch.no_grad():
        for start in range(0, len(rows), options.batch_size):
            batch = load_parts(ds, rows[start : start + options.batch_size], strict=False)
            bar.update(len(batch))
            if taught:
                read = [(s, s.reading_digest() in taught) for s in batch]
                copies += [s.part_id for s, copy in read if copy]
                batch = [s for s, copy in read if not copy]
            small = small_frames(batch, card)
            n_small += len(small)
            small_example = small_example or (small[0] if small else None)
            mask_problems += [
                {"part_id": s.part_id, "reason": s.mask_problem} for s in batch if s.mask_problem
            ]
            if batch:
                results += _score_batch(runner, card, batch)
    bar.close()
    if not results:
        msg = (
            f"no parts to evaluate in {data}: all {len(copies)} read the same as parts line "
            f"{line!r} was taught from (pass --include-adapt-parts to score them anyway)"
        )
        raise ValueError(msg)
    report = compute_metrics(results, card.threshold, card.classes)
    report.parts = results
    heat = model.heatmap_source()
    if report.pixel_auroc is not None and heat is None:
        report.pixel_auroc = None  # a flat map would score 0.5, as if it had been measured
        report.notes.append("no pixel_auroc: the line has no camera, so no heat-map")
    elif heat == "defect_map":
        report.notes.append(
            "heat-map: the backbone's pretrained defect map (the line was taught no good part "
            "to compare with: it shows where a part looks most like a defect, not how it "
            "differs from good parts)"
        )
    if mask_problems:
        report.mask_problems = mask_problems
        report.notes.append(
            f"{len(mask_problems)} part(s) were inspected without their mask, which could not be "
            f"read (listed in mask_problems; first: {mask_problems[0]['reason']}); they count in "
            "every metric but pixel_auroc"
        )
    if small_example is not None:
        report.notes.append(small_frames_note(n_small, small_example, card))
    if card.calibration and card.calibration.get("data") == resolved:
        report.notes.append(
            f"the line's threshold was set on this folder (inspect-app calibrate, from "
            f"{card.calibration.get('from_version')}): the rates at it are measured on the parts "
            "that set it; the split-half check in line.json's calibration is the fairer estimate"
        )
    if copies:
        report.notes.append(
            f"{len(copies)} part(s) read the same, sample for sample, as parts the line was "
            f"taught from (copies under other names or folders; first: {copies[0]}) and are "
            "not scored: their scores would flatter the line (pass --include-adapt-parts to "
            "score them too)"
        )
    if excluded:
        report.notes.append(
            f"{excluded} part(s) of this folder were used to adapt the line and are not scored "
            "(pass --include-adapt-parts to score them too)"
        )
    if options.backend == "torch":
        where = f"{torch.get_num_threads()} CPU thread(s)"
    else:
        where = f"{options.backend} ({options.threads or 'default'} thread(s))"
        report.notes.append(
            f"scored by {options.backend} ({getattr(runner, 'path', folder)}): what the line "
            "runs with that backend"
        )
    report.notes.append(
        f"latency: preprocessing + model per part on {where}, batches of {options.batch_size}"
    )
    return report


def scorer_for(
    home: Path, line: str, version: str, model: Any, options: EvaluateOptions
) -> Backend:
    """The backend that scores the parts: the loaded line model itself (torch), or the
    version's exported graph or engine, opened as `serve --backend` opens it."""
    if options.backend == "torch":
        return TorchBackend(model)
    from inspect_app.service import load_line

    try:
        return load_line(
            home, line, options.backend, options.threads, version, options.precision
        ).backend
    except BackendError as exc:
        hint = ""
        if options.backend == "tensorrt":
            hint = (
                " (an engine is built on the Jetson from the exported graph: "
                "deploy/jetson/README.md, step 6)"
            )
        msg = f"line {line!r} {version}: {exc}{hint}"
        raise ValueError(msg) from exc


def _score_batch(runner: Backend, card: LineCard, batch: Sequence[Sample]) -> list[PartResult]:
    """PartResults of one batch; unreadable parts (and parts the model cannot take) are FAULT."""
    out: list[PartResult] = []
    good: list[Sample] = []
    for s in batch:
        # what the line would make a FAULT (a flat, clipped or uniform reading) is one here too
        fault = s.fault or input_problem(s)
        if fault:
            out.append(PartResult(s.part_id, str(s.label), None, fault=fault))
        else:
            good.append(s)
    if not good:
        return out
    t = time.perf_counter()
    try:
        inputs = prepare_batch(good, card)
    except DataError as exc:
        if len(good) == 1:
            return [*out, PartResult(good[0].part_id, str(good[0].label), None, fault=str(exc))]
        return out + [r for s in good for r in _score_batch(runner, card, [s])]
    try:
        pred = runner.predict(inputs)
    except BackendError as exc:  # the parts are FAULT, as on the line: never passed
        return out + [
            PartResult(s.part_id, str(s.label), None, fault=f"backend error: {exc}") for s in good
        ]
    heatmaps = heatmaps_to_frames(pred.heatmap, inputs.frame_warps, card.image_size)
    per_part_ms = (time.perf_counter() - t) * 1000.0 / len(good)
    for i, s in enumerate(good):
        probs = pred.class_probs[i]
        score = float(pred.defect_score[i])
        if not np.isfinite(score):
            out.append(PartResult(s.part_id, str(s.label), None, fault="model output is NaN"))
            continue
        out.append(
            PartResult(
                part_id=s.part_id,
                label=str(s.label),
                defect_score=score,
                predicted_class=card.classes[int(probs.argmax())] if probs.size else None,
                latency_ms=per_part_ms,
                heatmap=heatmaps[i] if "image" in card.modalities else None,
                mask=s.mask,
            )
        )
    return out
