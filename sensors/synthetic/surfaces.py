"""Surface textures of the part families: brushed and cast metal, molded plastic, PCB, woven.

`render_surface` returns float32 RGB in 0..1. The `layout` generator fixes what is the same on
every part of a line (PCB traces, weave registration); the `part` generator varies what differs
from part to part (brushing marks, casting grain, fibre noise).
"""

from __future__ import annotations

import cv2
import numpy as np

from sensors.synthetic.spec import SurfaceSpec

# a blur wider than this is done on a coarser grid: OpenCV's direct Gaussian takes seconds at
# the sigma of a 1024 px frame's slow shading (341 px); frames up to 256 px never reach it
COARSE_BLUR_SIGMA = 96.0


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian noise low-passed at `sigma` pixels, rescaled to unit standard deviation."""
    x: np.ndarray = rng.standard_normal(shape).astype(np.float32)
    if sigma > COARSE_BLUR_SIGMA:
        # area-average down (itself a low-pass), blur there, interpolate back: the field is
        # smooth at this scale, so the shortcut changes nothing a camera would see
        step = int(np.ceil(sigma / (COARSE_BLUR_SIGMA / 2)))
        h, w = shape
        small = cv2.resize(x, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / step)
        x = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif sigma > 0.3:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    return x / max(float(x.std()), 1e-6)


def _rotate(img: np.ndarray, angle_deg: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def render_surface(
    spec: SurfaceSpec, size: int, layout: np.random.Generator, part: np.random.Generator
) -> np.ndarray:
    """A `size` x `size` patch of the part's surface, float32 RGB 0..1."""
    shape = (size, size)
    color = np.array(spec.color, dtype=np.float32)
    if spec.family == "brushed_metal":
        streaks: np.ndarray = part.standard_normal(shape).astype(np.float32)
        streaks = cv2.GaussianBlur(streaks, (0, 0), sigmaX=spec.texture_scale_px, sigmaY=0.6)
        streaks = _rotate(streaks / max(float(streaks.std()), 1e-6), spec.grain_angle_deg)
        shade = spec.texture_contrast * streaks + 0.02 * smooth_noise(part, shape, size / 6)
        return np.clip(color[None, None] * (1 + shade[..., None]), 0, 1)
    if spec.family == "cast_metal":
        s = spec.texture_scale_px
        grain = (
            0.5 * smooth_noise(part, shape, s / 2)
            + 0.35 * smooth_noise(part, shape, s * 2)
            + 0.25 * smooth_noise(part, shape, s * 6)
        )
        pits: np.ndarray = (part.random(shape) < 0.004).astype(np.float32)
        pits = cv2.GaussianBlur(pits, (0, 0), 0.8) * 4
        shade = spec.texture_contrast * grain - 0.25 * np.minimum(pits, 1)
        return np.clip(color[None, None] * (1 + shade[..., None]), 0, 1)
    if spec.family == "molded_plastic":
        grain = spec.texture_contrast * smooth_noise(part, shape, spec.texture_scale_px)
        sink = 0.008 * smooth_noise(part, shape, size / 3)
        return np.clip(color[None, None] + (grain + sink)[..., None], 0, 1)
    if spec.family == "pcb":
        return _pcb(spec, size, layout, part)
    if spec.family == "woven":
        return _woven(spec, size, part)
    msg = f"unknown surface family {spec.family!r}"
    raise ValueError(msg)


def _pcb(
    spec: SurfaceSpec, size: int, layout: np.random.Generator, part: np.random.Generator
) -> np.ndarray:
    color = np.array(spec.color, dtype=np.float32)
    img = np.empty((size, size, 3), np.float32)
    img[:] = color
    traces = np.zeros((size, size), np.float32)
    step = max(4, size // 24)
    for _ in range(int(layout.integers(12, 24))):
        x, y = (layout.integers(0, size // step, 2) * step).tolist()
        width = int(layout.choice([1, 2, 2, 3])) * max(1, size // 192)
        for _ in range(int(layout.integers(2, 5))):
            if layout.random() < 0.5:
                nx, ny = int(np.clip(x + layout.integers(-8, 9) * step, 0, size)), y
            else:
                nx, ny = x, int(np.clip(y + layout.integers(-8, 9) * step, 0, size))
            cv2.line(traces, (x, y), (nx, ny), 1.0, width, cv2.LINE_AA)
            x, y = nx, ny
    img = img * (1 + 0.45 * traces[..., None])  # copper under the mask shows lighter
    fibre = spec.texture_contrast * smooth_noise(part, (size, size), spec.texture_scale_px)
    return np.clip(img * (1 + fibre[..., None]), 0, 1)


def _woven(spec: SurfaceSpec, size: int, part: np.random.Generator) -> np.ndarray:
    """A 2/2 twill: tows alternate over and under, each tow shaded across its width."""
    p = spec.weave_period_px
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    offset = part.uniform(0, p, 2)
    u, v = (xx + offset[0]) / p, (yy + offset[1]) / p
    over = ((np.floor(u) - np.floor(v)) % 4) < 2
    across_warp = np.sin(np.pi * (u % 1.0)) ** 0.5
    across_weft = np.sin(np.pi * (v % 1.0)) ** 0.5
    shade = np.where(over, 0.75 + 0.35 * across_warp, 0.6 + 0.3 * across_weft)
    shade = shade * (1 + spec.texture_contrast * 0.3 * smooth_noise(part, (size, size), 1.0))
    img = np.array(spec.color, np.float32)[None, None] * shade[..., None]
    return np.clip(_rotate(img, spec.grain_angle_deg % 90 - 45), 0, 1)
