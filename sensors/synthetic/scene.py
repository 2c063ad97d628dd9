"""The camera's view of one part: outline and features on a background, lit, posed and imaged.

Rendering happens in two steps so that defects can be painted in between:
`render_part_layer` draws the part in its own frame (colour, coverage, height map, feature
footprints); `photograph` shades it from the line's light, jitters its pose, puts it on the
background with a shadow, and adds the camera's lighting gradient, blur and noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sensors.synthetic.spec import Feature, PartGeometry, SurfaceSpec
from sensors.synthetic.surfaces import render_surface, smooth_noise


@dataclass
class PartLayer:
    """A part in its own frame, before it is photographed. All arrays are (S, S[, 3]) float32."""

    rgb: np.ndarray
    alpha: np.ndarray  # part coverage 0..1 (anti-aliased outline)
    height: np.ndarray  # surface relief in pixels, for shading (features, dents)
    footprints: list[np.ndarray]  # one coverage mask per feature of the geometry (0..1)
    light: tuple[float, float]  # unit vector toward the light, image x/y


def part_box(geometry: PartGeometry, size: int) -> tuple[float, float, float, float]:
    """The part's bounding box in pixels: x0, y0, width, height."""
    w, h = geometry.width * size, geometry.height * size
    return (size - w) / 2, (size - h) / 2, w, h


def outline_mask(geometry: PartGeometry, size: int) -> np.ndarray:
    """Anti-aliased coverage of the part's outline, float32 0..1."""
    x0, y0, w, h = part_box(geometry, size)
    ss = 4  # draw at 4x and shrink for clean edges
    big = np.zeros((size * ss, size * ss), np.uint8)
    if geometry.shape == "disc":
        center = (round((x0 + w / 2) * ss), round((y0 + h / 2) * ss))
        cv2.ellipse(big, center, (round(w / 2 * ss), round(h / 2 * ss)), 0, 0, 360, 255, -1)
    else:
        r = min(w, h) * (0.5 if geometry.shape == "stadium" else geometry.corner)
        _rounded_rect(big, x0 * ss, y0 * ss, w * ss, h * ss, r * ss)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _rounded_rect(img: np.ndarray, x: float, y: float, w: float, h: float, r: float) -> None:
    r = max(1.0, min(r, w / 2, h / 2))
    xi, yi, wi, hi, ri = (round(v) for v in (x, y, w, h, r))
    cv2.rectangle(img, (xi + ri, yi), (xi + wi - ri, yi + hi), 255, -1)
    cv2.rectangle(img, (xi, yi + ri), (xi + wi, yi + hi - ri), 255, -1)
    for cx, cy in (
        (xi + ri, yi + ri),
        (xi + wi - ri, yi + ri),
        (xi + ri, yi + hi - ri),
        (xi + wi - ri, yi + hi - ri),
    ):
        cv2.circle(img, (cx, cy), ri, 255, -1)


def feature_footprint(feature: Feature, geometry: PartGeometry, size: int) -> np.ndarray:
    """Coverage of one feature, float32 0..1, in the part's frame."""
    x0, y0, w, h = part_box(geometry, size)
    ss = 4
    big = np.zeros((size * ss, size * ss), np.uint8)
    cx, cy = (x0 + feature.cx * w) * ss, (y0 + feature.cy * h) * ss
    fw, fh = feature.width * w * ss, feature.height * h * ss
    if feature.kind in ("hole", "boss"):
        cv2.ellipse(big, (round(cx), round(cy)), (round(fw / 2), round(fh / 2)), 0, 0, 360, 255, -1)
    elif feature.kind == "slot":
        _rounded_rect(big, cx - fw / 2, cy - fh / 2, fw, fh, min(fw, fh) / 2)
    else:
        cv2.rectangle(
            big,
            (round(cx - fw / 2), round(cy - fh / 2)),
            (round(cx + fw / 2), round(cy + fh / 2)),
            255,
            -1,
        )
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def render_part_layer(
    geometry: PartGeometry,
    surface: SurfaceSpec,
    size: int,
    layout: np.random.Generator,
    part: np.random.Generator,
    omit: int | None = None,
) -> PartLayer:
    """Draw the part with all its features except `omit` (a missing feature)."""
    rgb = render_surface(surface, size, layout, part)
    alpha = outline_mask(geometry, size)
    bevel = cv2.GaussianBlur(alpha, (0, 0), 1.5) * 2.0
    height: np.ndarray = bevel.copy()
    footprints = [feature_footprint(f, geometry, size) for f in geometry.features]
    accent = np.array(surface.accent_color, np.float32) * (0.9 + 0.1 * part.random())
    for i, (feature, fp) in enumerate(zip(geometry.features, footprints, strict=True)):
        if i == omit:
            continue
        m = fp[..., None]
        if feature.kind in ("hole", "slot"):
            height -= cv2.GaussianBlur(fp, (0, 0), 0.8) * 3.0
            rgb = rgb * (1 - m) + m * rgb * 0.12
        elif feature.kind == "boss":
            ring = np.clip(fp - cv2.erode(fp, np.ones((5, 5), np.uint8)), 0, 1)
            height += cv2.GaussianBlur(fp, (0, 0), 1.2) * 2.5
            rgb = rgb * (1 - 0.25 * ring[..., None]) * (1 + 0.08 * m)
        elif feature.kind == "pad":
            rgb = rgb * (1 - m) + m * accent
        else:  # component: a black package with bright leads along its long sides
            height += cv2.GaussianBlur(fp, (0, 0), 1.0) * 3.0
            body = np.array([0.07, 0.07, 0.08], np.float32)
            rgb = rgb * (1 - m) + m * body
            rgb = _leads(rgb, feature, geometry, size, accent)
    return PartLayer(
        rgb=np.clip(rgb, 0, 1).astype(np.float32),
        alpha=alpha,
        height=height,
        footprints=footprints,
        light=_light(geometry),
    )


def _leads(
    rgb: np.ndarray, f: Feature, geometry: PartGeometry, size: int, accent: np.ndarray
) -> np.ndarray:
    x0, y0, w, h = part_box(geometry, size)
    cx, cy, fw, fh = x0 + f.cx * w, y0 + f.cy * h, f.width * w, f.height * h
    n = max(2, int(fw / 6))
    leads = np.zeros(rgb.shape[:2], np.float32)
    for k in range(n):
        x = cx - fw / 2 + (k + 0.5) * fw / n
        for y in (cy - fh / 2 - 2, cy + fh / 2 + 2):
            cv2.rectangle(
                leads, (round(x - 1), round(y - 2)), (round(x + 1), round(y + 2)), 1.0, -1
            )
    m = leads[..., None]
    return rgb * (1 - m) + m * (0.5 * accent + 0.4)


def _light(geometry: PartGeometry) -> tuple[float, float]:
    a = np.radians(geometry.light_angle_deg)
    return float(np.cos(a)), float(np.sin(a))


@dataclass(frozen=True)
class Photo:
    """What the camera recorded, and where the defect landed in it."""

    image: np.ndarray  # uint8 (S, S, 3) RGB
    mask: np.ndarray | None  # bool (S, S), None when nothing is visible


def photograph(
    layer: PartLayer,
    geometry: PartGeometry,
    gloss: float,
    defect: np.ndarray | None,
    rng: np.random.Generator,
) -> Photo:
    """Light the part, place it with pose jitter on the background, and image it."""
    size = layer.alpha.shape[0]
    lx, ly = layer.light
    h = cv2.GaussianBlur(layer.height, (0, 0), 1.0)
    gx = cv2.Sobel(h, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(h, cv2.CV_32F, 0, 1, ksize=3) / 8
    shade = np.clip(-(gx * lx + gy * ly), -1, 1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    hx, hy = 0.5 + 0.25 * lx, 0.5 + 0.25 * ly
    highlight = gloss * np.exp(-((xx - hx) ** 2 + (yy - hy) ** 2) / 0.08)
    rgb = layer.rgb * (1 + 0.9 * shade[..., None]) + highlight[..., None] * 0.6

    angle = rng.normal(0, geometry.pose_jitter_deg)
    shift = rng.normal(0, geometry.shift_jitter * size, 2)
    m = np.asarray(cv2.getRotationMatrix2D((size / 2, size / 2), angle, rng.uniform(0.97, 1.03)))
    m[:, 2] = m[:, 2] + shift.astype(np.float64)

    def warp(a: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.warpAffine(a, m, (size, size), flags=cv2.INTER_LINEAR))

    rgb, alpha = warp(rgb), warp(layer.alpha)

    bg = np.array(geometry.background, np.float32)[None, None] * (
        1 + geometry.background_texture * smooth_noise(rng, (size, size), 1.5)[..., None]
    )
    shadow = np.roll(alpha, (round(4 * -ly), round(4 * -lx)), axis=(0, 1))
    bg = bg * (1 - 0.45 * cv2.GaussianBlur(shadow, (0, 0), 4)[..., None])
    img = bg * (1 - alpha[..., None]) + rgb * alpha[..., None]

    ramp = (xx - 0.5) * lx + (yy - 0.5) * ly
    vignette = 1 - 0.15 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
    img = img * ((1 + geometry.light_gradient * ramp) * vignette)[..., None]
    img = img * rng.uniform(0.92, 1.08)  # exposure
    sigma = geometry.blur_sigma_px * rng.uniform(0.6, 1.4)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = img + rng.normal(0, geometry.noise_sigma, img.shape).astype(np.float32)
    image = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    mask = None
    if defect is not None:
        mask = warp(defect.astype(np.float32)) > 0.5
        if not mask.any():
            mask = None
    return Photo(image=image, mask=mask)
