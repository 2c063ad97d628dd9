"""Pose alignment: every frame of a line warped onto the line's reference part.

Parts on a line sit in a fixture, but never exactly: a degree of rotation and a few pixels of
shift from part to part. Comparing a part with the good parts pixel by pixel (the line model's
template score, `models.template`) needs them on top of each other, so each frame is registered
to the line's reference before the model sees it: enhanced-correlation-coefficient (ECC)
alignment with a rigid motion (rotation and shift; affine on request), coarse to fine, on the
model-sized gray image.

`fit_alignment` builds the reference from the good adapt parts (the mean of the aligned good
parts, refined once) and measures how well they register. Products that do not register (a
texture with no fixed layout, a web of steel sheet, parts thrown loose on a belt) get no
alignment: `adapt --align auto` keeps it only when every good adapt part registers and their
median correlation after alignment is at least `AUTO_MIN_CORRELATION`.

A camera often sees more than the part: a fixture's window, a clamp, the edge of the belt.
These stay where they are in the camera's view while the part moves, so after registration
they move instead, by as much as the part did, and a good part at a new pose differs from the
good parts' template all along such an edge. `fit_alignment` measures how much of the frame
does so (`camera_fixed_mask`), and adapt says to crop such a line to its part (`--roi`).

At run time a frame that cannot be registered (ECC does not converge) makes
`inspect_app.preprocess.prepare_batch` raise `DataError` naming the part: the part becomes a
FAULT, never judged on an unaligned frame.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from inspect_app.defaults import ALIGN_MODES
from models.inputs import ModelInputs

# ECC motions by name. Euclidean (rotation + shift) by default; affine (rotation, shift, scale,
# a little shear) for a line whose parts come nearer or farther from the camera: on five
# development lines affine registration lowered image-only AUROC (0.864 -> 0.827), its extra
# freedom sometimes fitting a defect away.
MOTIONS = {"ecc-euclidean": cv2.MOTION_EUCLIDEAN, "ecc-affine": cv2.MOTION_AFFINE}
METHOD = "ecc-euclidean"
AUTO_MIN_CORRELATION = 0.8  # median over the good adapt parts, for `--align auto`
_BLUR = 5  # Gaussian kernel (pixels) on the gray image before registering
_ITERATIONS = 60
_EPS = 1e-4
# `estimate_warp(any_turn=True)`: the turns tried before ECC (10 degrees apart: ECC takes the
# last few); `fit_alignment` turns them on when the good parts register better so by
# ANY_TURN_GAIN in median correlation (and no fewer of them)
TURN_STEPS = 36
ANY_TURN_GAIN = 0.01
# tried every way, ECC also settles on frames that are no part: 19 of 20 frames of an empty
# fixture's noise at correlation 0.08-0.38 against a turned line's reference, where that line's
# parts register at 0.90 or more; below this such a frame is not registered (a FAULT)
ANY_TURN_MIN_CORRELATION = 0.5
# camera-fixed pixels (`camera_fixed_mask`): the good parts' variance there as the camera saw
# them is under FIXED_RATIO of their variance registered, where that is above its median over
# the frame, among the pixels SEEN_WHOLE_SHARE of the registered frames take from inside the
# frame. Measured: 0.00 % of the frame on twelve generator lines (parts on a loose background);
# 4.7-15 % for parts seen through a fixed window of plain plate (benchmarks/camera_frames.py's
# fixture case, lines 101 and 202; three framings of line 707).
FIXED_RATIO = 0.25
SEEN_WHOLE_SHARE = 0.75
# OpenCV's stubs refuse `inputMask=None` next to `gaussFiltSize`, which OpenCV itself accepts
_ecc: Any = cv2.findTransformECC


@dataclass
class Registration:
    """Where each frame of a batch landed: ECC correlation (nan when it failed) and the warp."""

    correlation: np.ndarray  # (B,) in [-1, 1], nan: not registered (left as it was)
    failed: list[int] = field(default_factory=list)
    warps: list[np.ndarray | None] = field(default_factory=list)  # reference -> frame, (2, 3)


@dataclass(frozen=True)
class Alignment:
    """A line's reference gray image (S, S) and how frames are registered to it."""

    reference: np.ndarray  # float32 (S, S), blurred gray, values in [0, 1]
    median_correlation: float = float("nan")  # good adapt parts after alignment
    method: str = METHOD  # a key of MOTIONS
    good_parts: int = 0  # good adapt parts it was measured on (0: not recorded)
    unregistered: int = 0  # of those, how many ECC could not register onto the reference
    # the share of the frame that stays put in the camera's view while the good parts move
    # (`camera_fixed_mask`): a fixture or the belt around the part, moved by registration
    camera_fixed_share: float = 0.0
    # the parts arrive in any orientation: every turn is tried before ECC (`estimate_warp`)
    any_turn: bool = False
    # bool (S, S): those pixels (`camera_fixed_mask`), for adapt's advice; not saved
    fixed: np.ndarray | None = field(default=None, compare=False, repr=False)

    def refusal(self) -> str | None:
        """Why `--align auto` leaves this alignment off, or None when it keeps it.

        Every good adapt part must register, and well: a good part that cannot be registered
        now is a line whose good parts would often be FAULT later (a texture with no fixed
        layout can pass the correlation bar by chance on the parts that do converge).
        """
        if self.unregistered:
            return (
                f"{self.unregistered} of {self.good_parts} good parts could not be registered "
                "onto one reference"
            )
        if not self.median_correlation >= AUTO_MIN_CORRELATION:
            return (
                f"the good parts register with median correlation {self.median_correlation:.3f}"
                f", below {AUTO_MIN_CORRELATION}"
            )
        return None

    def register(
        self, images: torch.Tensor, present: torch.Tensor | None
    ) -> tuple[torch.Tensor, Registration]:
        """`images` registered onto this reference, as this line registers them (`register`)."""
        return register(images, present, self.reference, self.method, self.any_turn)

    def to_dict(self) -> dict[str, Any]:
        png = cv2.imencode(".png", np.clip(self.reference * 255.0 + 0.5, 0, 255).astype(np.uint8))
        out: dict[str, Any] = {
            "method": self.method,
            "size": int(self.reference.shape[0]),
            "median_correlation": round(float(self.median_correlation), 4),
            "good_parts": self.good_parts,
            "reference_png": base64.b64encode(png[1].tobytes()).decode("ascii"),
            "camera_fixed_share": round(self.camera_fixed_share, 4),
        }
        if self.any_turn:
            out["any_turn"] = True
        region = None if self.fixed is None else enclosed_region(self.fixed)
        if region is not None:  # in the reference's pixels; adapt's advice (lines.py)
            out["camera_fixed_encloses"] = list(region)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "line.json") -> Alignment:
        method = raw.get("method")
        if method not in MOTIONS:
            msg = f"{source}: alignment method {method!r} is not one of {sorted(MOTIONS)}"
            raise ValueError(msg)
        return cls(
            reference=_decode_reference(str(raw.get("reference_png", "")), source),
            median_correlation=float(raw.get("median_correlation", float("nan"))),
            method=str(method),
            good_parts=int(raw.get("good_parts", 0)),
            camera_fixed_share=float(raw.get("camera_fixed_share", 0.0)),
            any_turn=bool(raw.get("any_turn", False)),
        )


@functools.lru_cache(maxsize=8)
def _decode_reference(text: str, source: str) -> np.ndarray:
    try:
        data = np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    except (ValueError, cv2.error):
        img = None
    if img is None:
        msg = f"{source}: the alignment reference image cannot be decoded"
        raise ValueError(msg)
    return img.astype(np.float32) / 255.0


def alignment_from_card(card: Any) -> Alignment | None:
    """The card's alignment, None when the line has none (cards from before it have none)."""
    raw = getattr(card, "align", None)
    return Alignment.from_dict(dict(raw)) if raw else None


def gray(images: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) model-normalized images -> (B, S, S) float32 blurred gray, min-max to [0, 1].

    ECC is blind to gain and offset, so the normalization only keeps the numbers tame.
    """
    g = images.float().mean(1).numpy()
    out = np.empty_like(g, dtype=np.float32)
    for i, im in enumerate(g):
        lo, hi = float(im.min()), float(im.max())
        im = (im - lo) / (hi - lo) if hi > lo else np.zeros_like(im)
        out[i] = cv2.GaussianBlur(im.astype(np.float32), (_BLUR, _BLUR), 0)
    return out


def estimate_warp(
    reference: np.ndarray, image: np.ndarray, method: str = METHOD, any_turn: bool = False
) -> tuple[np.ndarray, float]:
    """The warp (2, 3) taking `reference` coordinates into `image`, and its correlation.

    Coarse to fine: half size first (catches the larger shifts), then full size. ECC finds a
    turn of a few degrees (OpenCV's rigid ECC cannot pass 90); `any_turn` (parts that arrive
    in any orientation: a disc, a washer, a part on a turntable) first finds the best of
    `TURN_STEPS` turns on the half-size image (`_best_turn`), turns the image back by it and
    lets ECC find the rest. Raises `cv2.error` when ECC does not converge.
    """
    h, w = reference.shape
    if not any_turn or min(h, w) < 16 or h % 2 or w % 2:  # the turns are tried at half size
        return _ecc_coarse_to_fine(reference, image, method)
    small = (w // 2, h // 2)
    turn = _best_turn(
        cv2.resize(reference, small, interpolation=cv2.INTER_AREA),
        cv2.resize(image, small, interpolation=cv2.INTER_AREA),
    )
    turn = scale_warp(turn, 2)
    flags = cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP
    turned = cv2.warpAffine(image, turn, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    rest, cc = _ecc_coarse_to_fine(reference, turned, method)
    # reference -> turned image (rest), then turned image -> image (turn)
    a = turn[:, :2].astype(np.float64) @ rest[:, :2].astype(np.float64)
    t = turn[:, :2].astype(np.float64) @ rest[:, 2].astype(np.float64) + turn[:, 2]
    return np.concatenate([a, t[:, None]], axis=1).astype(np.float32), cc


def _ecc_coarse_to_fine(
    reference: np.ndarray, image: np.ndarray, method: str
) -> tuple[np.ndarray, float]:
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, _ITERATIONS, _EPS)
    h, w = reference.shape
    small = (max(w // 2, 8), max(h // 2, 8))
    warp = np.eye(2, 3, dtype=np.float32)
    _, warp = _ecc(
        cv2.resize(reference, small, interpolation=cv2.INTER_AREA),
        cv2.resize(image, small, interpolation=cv2.INTER_AREA),
        warp,
        MOTIONS[method],
        criteria,
        None,
        1,
    )
    warp[:, 2] *= 2.0  # translation from half size to full size
    cc, warp = _ecc(reference, image, warp, MOTIONS[method], criteria, None, 1)
    return warp, float(cc)


def _best_turn(reference: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The turn about the frame's centre, with the shift that best lines it up (phase
    correlation), among `TURN_STEPS` whole-circle steps under which `image` correlates best
    with `reference`: a (2, 3) warp, reference -> image."""
    h, w = reference.shape
    ref = reference - reference.mean()
    ref /= np.linalg.norm(ref) + 1e-9
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    best, best_cc = np.eye(2, 3, dtype=np.float32), -np.inf
    flags = cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP
    for step in range(TURN_STEPS):
        turn = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), 360.0 * step / TURN_STEPS, 1.0)
        seen = cv2.warpAffine(image, turn, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        # seen(x) = reference(x - d): the reference lands at image(turn (y + d))
        d, _ = cv2.phaseCorrelate(reference.astype(np.float32), seen.astype(np.float32), window)
        warp = turn.copy()
        warp[:, 2] += turn[:, :2] @ np.array(d)
        moved = cv2.warpAffine(image, warp, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        moved = moved - moved.mean()
        cc = float((ref * moved).sum() / (np.linalg.norm(moved) + 1e-9))
        if cc > best_cc:
            best, best_cc = warp.astype(np.float32), cc
    return best


def warp_images(images: torch.Tensor, warps: list[np.ndarray | None]) -> torch.Tensor:
    """Each image (3, S, S) resampled onto the reference grid; None leaves it as it is."""
    out = images.clone()
    for i, warp in enumerate(warps):
        if warp is None:
            continue
        chw = images[i].numpy()
        h, w = chw.shape[1:]
        hwc = np.ascontiguousarray(chw.transpose(1, 2, 0))
        moved = cv2.warpAffine(
            hwc,
            warp,
            (w, h),
            flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        out[i] = torch.from_numpy(moved.reshape(h, w, -1).transpose(2, 0, 1).copy())
    return out


def register(
    images: torch.Tensor,
    present: torch.Tensor | None,
    reference: np.ndarray,
    method: str = METHOD,
    any_turn: bool = False,
) -> tuple[torch.Tensor, Registration]:
    """`images (B, 3, S, S)` aligned onto `reference (R, R)`; frames not present are skipped.
    `any_turn`: the line's parts arrive in any orientation (`estimate_warp`); a frame that
    then correlates under `ANY_TURN_MIN_CORRELATION` with the reference is not registered.

    `S` is `R` or a whole multiple `k` of it (a line whose template compares larger frames,
    docs/adapt.md step 5): the warp is then estimated on the frames averaged `k` x `k` down to
    the reference's size and carried up to theirs (`scale_warp`), a quarter of the ECC work at
    `k` = 2 for the same template (development lines, template alone: 0.940 either way).
    """
    size, ref = images.shape[-1], reference.shape[-1]
    k = size // ref if ref else 0
    if images.shape[-2] != size or reference.shape[-2] != ref or k < 1 or k * ref != size:
        msg = (
            f"images are {tuple(images.shape[-2:])} but the line's alignment reference is "
            f"{reference.shape}; the line was taught at another image size"
        )
        raise ValueError(msg)
    grays = gray(F.avg_pool2d(images, k) if k > 1 else images)
    warps: list[np.ndarray | None] = []
    corr = np.full(images.shape[0], np.nan)
    failed = []
    for i in range(images.shape[0]):
        if present is not None and not bool(present[i]):
            warps.append(None)
            continue
        try:
            warp, corr[i] = estimate_warp(reference, grays[i], method, any_turn)
        except cv2.error:
            warp = None
        if warp is None or (any_turn and corr[i] < ANY_TURN_MIN_CORRELATION):
            corr[i] = np.nan
            warps.append(None)
            failed.append(i)
            continue
        warps.append(scale_warp(warp, k))
    return warp_images(images, warps), Registration(corr, failed, warps)


def scale_warp(warp: np.ndarray, k: int) -> np.ndarray:
    """A (2, 3) warp between images of side R carried to images of side k·R.

    Pixel centres: x_big = k·x_small + c with c = (k - 1) / 2, so for y = A x + t the
    big-image warp keeps A and takes t' = k·t + (I - A)·(c, c).
    """
    if k == 1:
        return warp
    a, t = warp[:, :2].astype(np.float64), warp[:, 2].astype(np.float64)
    c = (k - 1) / 2.0
    shifted = k * t + (np.eye(2) - a) @ np.array([c, c])
    return np.concatenate([a, shifted[:, None]], axis=1).astype(np.float32)


def heatmaps_to_frames(
    heatmaps: np.ndarray, warps: list[np.ndarray | None] | None, size: int
) -> np.ndarray:
    """Heat-maps `(B, h, w)` of registered frames, moved back onto the frames as they were.

    The model sees each frame registered onto the reference, so its heat-map is in the
    reference's place; the operator looks at the frame as the camera took it. `warps` are the
    registration's (reference -> frame, in `size`-pixel model-image coordinates); a None warp
    leaves its heat-map as it is.
    """
    if not warps:
        return heatmaps
    out = np.array(heatmaps, dtype=np.float32, copy=True)
    h, w = out.shape[1:]
    for i, warp in enumerate(warps):
        if warp is None:
            continue
        big = cv2.resize(out[i], (size, size), interpolation=cv2.INTER_LINEAR)
        moved = cv2.warpAffine(  # dst(x) = src(warp^-1 x): reference place -> frame place
            big, warp, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        out[i] = cv2.resize(moved, (w, h), interpolation=cv2.INTER_AREA)
    return out


def fit_alignment(
    images: torch.Tensor, present: torch.Tensor | None = None, method: str = METHOD
) -> Alignment:
    """A reference from good parts' images `(N, 3, S, S)`: their aligned mean, refined once.

    When the good parts register better (by `ANY_TURN_GAIN` in median correlation, and no
    fewer of them) with every turn tried first (`estimate_warp(any_turn=True)`), the line's
    parts arrive in any orientation and the alignment keeps that (`any_turn`).
    """
    keep = torch.ones(images.shape[0], dtype=torch.bool) if present is None else present.bool()
    good = images[keep]
    if good.shape[0] == 0:
        msg = "alignment needs at least one good part with an image"
        raise ValueError(msg)
    grays = gray(good)
    plain = _fitted(good, grays, method, any_turn=False)
    if good.shape[0] < 2:
        return plain
    turned = _fitted(good, grays, method, any_turn=True)
    gain = turned.median_correlation - plain.median_correlation
    # registering more parts is not enough: trying every turn, ECC can also settle on a frame
    # that is no part at all (an empty fixture), which the plain fit rightly fails on
    if turned.unregistered <= plain.unregistered and gain > ANY_TURN_GAIN:
        return turned
    return plain


def _fitted(good: torch.Tensor, grays: np.ndarray, method: str, any_turn: bool) -> Alignment:
    """`fit_alignment` one way: `any_turn` or ECC alone; `grays` are `gray(good)`."""
    # start from the part most like the others, so one odd part does not become the reference
    flat = grays.reshape(grays.shape[0], -1)
    flat = flat - flat.mean(1, keepdims=True)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True) + 1e-9
    reference = grays[int(np.argmax((flat @ flat.T).sum(1)))]
    for _ in range(2):
        aligned, _ = register(good, None, reference, method, any_turn)
        reference = gray(aligned.mean(0, keepdim=True))[0]
    aligned, reg = register(good, None, reference, method, any_turn)
    corr = reg.correlation[np.isfinite(reg.correlation)]
    fixed = camera_fixed_mask(grays, gray(aligned), seen_whole(reg.warps, grays.shape[-1]))
    return Alignment(
        reference=reference,
        median_correlation=float(np.median(corr)) if corr.size else float("nan"),
        method=method,
        good_parts=int(good.shape[0]),
        unregistered=len(reg.failed),
        camera_fixed_share=float(fixed.mean()) if fixed is not None else 0.0,
        fixed=fixed if fixed is not None and fixed.any() else None,
        any_turn=any_turn,
    )


def enclosed_region(fixed: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box (x, y, w, h, in `fixed`'s pixels) around the frame's centre that the camera-fixed
    pixels leave free: grown from the centre a row or a column at a time, on every side until
    that side would take in a camera-fixed pixel or reaches the frame's edge. A fixture's
    window, or the gap between two clamps. None when the centre itself is camera-fixed, the box
    is the whole frame, or it is under a sixteenth of it (no part the line could inspect)."""
    size = fixed.shape[-1]
    c = size // 2
    if fixed[c, c]:
        return None
    x0, y0, x1, y1 = c, c, c + 1, c + 1  # half-open
    grew = True
    while grew:
        grew = False
        if x0 > 0 and not fixed[y0:y1, x0 - 1].any():
            x0, grew = x0 - 1, True
        if x1 < size and not fixed[y0:y1, x1].any():
            x1, grew = x1 + 1, True
        if y0 > 0 and not fixed[y0 - 1, x0:x1].any():
            y0, grew = y0 - 1, True
        if y1 < size and not fixed[y1, x0:x1].any():
            y1, grew = y1 + 1, True
    w, h = x1 - x0, y1 - y0
    if w * h == size * size or w * h < size * size / 16:
        return None
    return x0, y0, w, h


def seen_whole(warps: list[np.ndarray | None], size: int) -> np.ndarray:
    """bool (size, size): the registered pixels that most warps (`SEEN_WHOLE_SHARE` of them)
    take from inside the frame, `_BLUR` // 2 pixels clear of what they fill in from beyond its
    edge."""
    kernel = np.ones((2 * (_BLUR // 2) + 1,) * 2, np.uint8)
    ones = np.ones((size, size), np.float32)
    flags = cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP
    inside = [
        cv2.erode(
            (cv2.warpAffine(ones, w, (size, size), flags=flags) > 0.999).astype(np.uint8),
            kernel,
            borderValue=0,
        )
        for w in warps
        if w is not None
    ]
    if not inside:
        return np.ones((size, size), bool)
    return np.asarray(np.mean(inside, axis=0) >= SEEN_WHOLE_SHARE)


def camera_fixed_mask(
    as_seen: np.ndarray, registered: np.ndarray, inside: np.ndarray | None = None
) -> np.ndarray | None:
    """Where good parts' frames agree as the camera saw them and not once registered.

    `as_seen` and `registered` (N, S, S): the good parts' gray frames (`gray`) before and after
    registration; `inside` (bool (S, S), `seen_whole`): the registered pixels most frames take
    from inside the frame (the rest are filled in and prove nothing). A fixture's edge stays
    put in the camera's view while the part moves, so the good parts agree on it as seen (low
    variance) and, registered, each moves it by its own pose (high variance); on the part it
    is the other way round. Returns the pixels whose variance as seen is under `FIXED_RATIO` of the
    registered one, where that is above its median over the frame, in runs at least 3 pixels
    wide (bool (S, S)); None with fewer than 3 good parts.
    """
    if as_seen.shape[0] < 3:
        return None
    seen, moved = as_seen.var(0), registered.var(0)
    fixed = (seen < FIXED_RATIO * moved) & (moved > np.median(moved))
    if inside is not None:
        fixed &= inside
    # an edge, blurred by `gray`, is wider than a pixel; lone pixels are the sensor's noise
    opened = cv2.morphologyEx(fixed.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return np.asarray(opened.astype(bool))


def choose_alignment(
    images: torch.Tensor,
    present: torch.Tensor | None,
    good: torch.Tensor,
    mode: str,
    method: str = METHOD,
) -> Alignment | None:
    """The line's alignment from its adapt images `(N, 3, S, S)`, or None.

    `good (N,)` marks the good parts (the reference is made from them only). `mode` "off": none;
    "on": always (raises when it cannot be made; `unregistered` counts the good parts ECC
    could not register); "auto": only when every good part registers, and well
    (`Alignment.refusal`: median ECC correlation at least `AUTO_MIN_CORRELATION`).
    """
    alignment = _measure_alignment(images, present, good, mode, method)
    if mode == "auto" and alignment is not None and alignment.refusal():
        return None
    return alignment


def _measure_alignment(
    images: torch.Tensor,
    present: torch.Tensor | None,
    good: torch.Tensor,
    mode: str,
    method: str,
) -> Alignment | None:
    """`choose_alignment` before its "auto" rule: the alignment the good parts give, measured."""
    if mode not in ALIGN_MODES:
        msg = f"align must be one of {ALIGN_MODES}, got {mode!r}"
        raise ValueError(msg)
    if mode == "off":
        return None
    keep = good.bool() if present is None else good.bool() & present.bool()
    if int(keep.sum()) < 2:
        if mode == "on":
            msg = "pose alignment needs at least 2 good parts with an image among the adapt parts"
            raise ValueError(msg)
        return None
    if method not in MOTIONS:
        msg = f"alignment motion must be one of {sorted(MOTIONS)}, got {method!r}"
        raise ValueError(msg)
    return fit_alignment(images[keep], method=method)


def align_adapt_inputs(
    inputs: ModelInputs, good: torch.Tensor, mode: str, method: str = METHOD
) -> tuple[ModelInputs, Alignment | None, str | None]:
    """The adapt parts' inputs registered onto the alignment made from their good parts.

    Returns the inputs as they were and None when the line gets no alignment (no camera, mode
    "off", or "auto" and the parts do not register: the third value then says why). Later
    parts are registered by `inspect_app.preprocess.prepare_batch` from the card's `align`.
    """
    if inputs.image is None:
        return inputs, None, None
    alignment = _measure_alignment(inputs.image, inputs.image_present, good, mode, method)
    if alignment is None:  # "off", or "auto" with too few good parts to measure it on
        few = "fewer than 2 good parts with an image to register onto each other"
        return inputs, None, None if mode == "off" else few
    refused = alignment.refusal()
    if mode == "auto" and refused:
        return inputs, None, refused
    image, reg = alignment.register(inputs.image, inputs.image_present)
    return dataclasses.replace(inputs, image=image, frame_warps=reg.warps), alignment, None
