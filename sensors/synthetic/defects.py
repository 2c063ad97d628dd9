"""Surface defects painted onto a part before it is photographed, each with its pixel mask.

Every function takes the part layer, a severity in 0..1 (0 = barely there, 1 = obvious) and a
random generator, changes the layer in place and returns the defect's mask (float32 0..1, the
part's own frame). `missing_feature` is drawn by leaving a feature out of the rendering instead.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from sensors.synthetic.scene import PartLayer


def _inside_point(layer: PartLayer, rng: np.random.Generator, margin_px: int) -> tuple[int, int]:
    """A random point well inside the part, away from its outline and off its features."""
    solid = (layer.alpha > 0.99).astype(np.uint8)
    for footprint in layer.footprints:
        solid[footprint > 0.05] = 0
    inner = cv2.erode(solid, np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8))
    ys, xs = np.nonzero(inner if inner.any() else solid)
    i = int(rng.integers(len(xs)))
    return int(xs[i]), int(ys[i])


def _edge_point(layer: PartLayer, rng: np.random.Generator) -> tuple[int, int]:
    """A random point on the part's outline."""
    ys, xs = np.nonzero((layer.alpha > 0.3) & (layer.alpha < 0.7))
    i = int(rng.integers(len(xs)))
    return int(xs[i]), int(ys[i])


def _polyline(
    start: tuple[int, int],
    angle: float,
    length: float,
    bend: float,
    steps: int,
    rng: np.random.Generator,
) -> np.ndarray:
    pts = [np.array(start, float)]
    for _ in range(steps):
        angle += rng.normal(0, bend)
        pts.append(pts[-1] + length / steps * np.array([np.cos(angle), np.sin(angle)]))
    return np.round(np.array(pts)).astype(np.int32)


def scratch(layer: PartLayer, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A thin straight-ish tool mark: brighter (burnished) or darker, with a faint groove."""
    size = layer.alpha.shape[0]
    length = size * rng.uniform(0.12, 0.4)
    pts = _polyline(
        _inside_point(layer, rng, size // 10), rng.uniform(0, 2 * np.pi), length, 0.05, 12, rng
    )
    line = np.zeros((size, size), np.float32)
    width = 1 if severity < 0.6 or size < 200 else 2
    cv2.polylines(line, [pts], False, 1.0, width, cv2.LINE_AA)
    line *= layer.alpha
    contrast = 0.12 + 0.5 * severity
    bright = rng.random() < 0.6
    target = np.ones(3, np.float32) if bright else np.zeros(3, np.float32)
    layer.rgb[:] = (
        layer.rgb * (1 - contrast * line[..., None]) + contrast * line[..., None] * target
    )
    layer.height -= 0.6 * line
    return _dilate(line, 2)


def dent(layer: PartLayer, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth depression, seen only through shading from the raking light."""
    size = layer.alpha.shape[0]
    cx, cy = _inside_point(layer, rng, size // 8)
    sx, sy = size * rng.uniform(0.025, 0.06, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bump = np.exp(-((xx - cx) ** 2 / (2 * sx**2) + (yy - cy) ** 2 / (2 * sy**2)))
    depth = (1.5 + 6.0 * severity) * (sx + sy) / 20
    layer.height -= depth * bump * layer.alpha
    layer.rgb[:] = layer.rgb * (1 - 0.06 * severity * bump[..., None])
    return ((bump > 0.12) * layer.alpha).astype(np.float32)


def crack(layer: PartLayer, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A jagged dark fracture line running in from the outline, with a branch or two."""
    size = layer.alpha.shape[0]
    sx, sy = _edge_point(layer, rng)
    toward = np.arctan2(size / 2 - sy, size / 2 - sx) + rng.normal(0, 0.4)
    length = size * rng.uniform(0.1, 0.3) * (0.6 + 0.6 * severity)
    pts = _polyline((sx, sy), toward, length, 0.45, 18, rng)
    line = np.zeros((size, size), np.float32)
    cv2.polylines(line, [pts], False, 1.0, 1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):
        k = int(rng.integers(4, len(pts) - 2))
        branch = _polyline(
            tuple(pts[k]),
            toward + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1),
            length * rng.uniform(0.2, 0.45),
            0.5,
            8,
            rng,
        )
        cv2.polylines(line, [branch], False, 0.8, 1, cv2.LINE_AA)
    line *= layer.alpha
    dark = 0.45 + 0.5 * severity
    layer.rgb[:] = layer.rgb * (1 - dark * line[..., None])
    layer.height -= 0.8 * line
    return _dilate(line, 2)


def stain(layer: PartLayer, severity: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular blot of oil, coolant residue or rust, with soft edges."""
    size = layer.alpha.shape[0]
    cx, cy = _inside_point(layer, rng, size // 10)
    r = size * rng.uniform(0.04, 0.1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / r
    noise = rng.standard_normal((size, size)).astype(np.float32)
    wobble: np.ndarray = cv2.GaussianBlur(noise, (0, 0), r / 3)
    wobble /= max(float(wobble.std()), 1e-6)
    blob = np.clip((1.0 + 0.35 * wobble - dist) * 3, 0, 1) * layer.alpha
    blob = cv2.GaussianBlur(blob, (0, 0), 1.2)
    tints = ([0.35, 0.22, 0.08], [0.15, 0.13, 0.1], [0.55, 0.5, 0.4])  # rust, oil, residue
    tint = np.array(tints[int(rng.integers(len(tints)))], np.float32)
    strength = 0.18 + 0.5 * severity
    a = strength * blob[..., None]
    layer.rgb[:] = layer.rgb * (1 - a) + a * tint * (0.6 + 0.8 * layer.rgb.mean(-1, keepdims=True))
    return (blob > 0.4).astype(np.float32)


def edge_chip(layer: PartLayer, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A piece broken off the outline: the background shows through, the fracture is rough."""
    size = layer.alpha.shape[0]
    cx, cy = _edge_point(layer, rng)
    r = size * (0.015 + 0.035 * severity) * rng.uniform(0.8, 1.2)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
    radii = r * rng.uniform(0.6, 1.2, 9)
    poly = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
    chip = np.zeros((size, size), np.float32)
    cv2.fillPoly(chip, [np.round(poly).astype(np.int32)], 1.0, cv2.LINE_AA)
    chip = chip * (layer.alpha > 0.5)
    removed = np.minimum(layer.alpha, chip)
    layer.alpha[:] = layer.alpha - removed
    rim = np.clip(cv2.dilate(removed, np.ones((3, 3), np.uint8)) - removed, 0, 1) * layer.alpha
    layer.rgb[:] = layer.rgb * (1 - 0.35 * rim[..., None]) + 0.35 * rim[..., None] * 0.9
    layer.height -= 1.5 * rim
    return _dilate(removed, 1)


def missing_feature_mask(layer: PartLayer, index: int) -> np.ndarray:
    """The footprint where feature `index` should have been."""
    return _dilate((layer.footprints[index] > 0.3).astype(np.float32), 2)


def _dilate(m: np.ndarray, px: int) -> np.ndarray:
    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.dilate((m > 0.15).astype(np.float32), k)


PAINTERS: dict[str, Callable[[PartLayer, float, np.random.Generator], np.ndarray]] = {
    "scratch": scratch,
    "dent": dent,
    "crack": crack,
    "stain": stain,
    "edge_chip": edge_chip,
}
"""The image defects that are painted onto the part (everything except `missing_feature`)."""
