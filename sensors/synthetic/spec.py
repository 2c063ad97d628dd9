"""`LineSpec`: everything that makes one synthetic production line differ from another.

A line is drawn from an integer seed: the part's surface family and its parameters, the part's
outline and feature layout, the camera's lighting, the machine's kinematics (shaft speed,
bearing geometry, gear teeth, structural resonances) and the 3-5 defect classes the line has.
The same seed always gives the same line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from sensors.synthetic.catalog import IMAGE, MODALITIES, VIBRATION, classes_for

SURFACE_FAMILIES: tuple[str, ...] = (
    "brushed_metal",
    "cast_metal",
    "molded_plastic",
    "pcb",
    "woven",
)
PART_SHAPES: tuple[str, ...] = ("rounded_rect", "disc", "stadium")


@dataclass(frozen=True)
class SurfaceSpec:
    """How the part's surface looks: family, colour and texture parameters (all in 0..1 units)."""

    family: str
    color: tuple[float, float, float]
    texture_contrast: float
    texture_scale_px: float
    grain_angle_deg: float
    gloss: float
    weave_period_px: float = 8.0
    accent_color: tuple[float, float, float] = (0.8, 0.65, 0.3)


@dataclass(frozen=True)
class Feature:
    """A feature on the part, in part coordinates (0..1 of the part's bounding box)."""

    kind: str  # hole, boss, slot, pad or component
    cx: float
    cy: float
    width: float
    height: float


@dataclass(frozen=True)
class PartGeometry:
    """The part's outline, its features, and the scene around it."""

    shape: str
    width: float  # fraction of the image
    height: float
    corner: float  # corner radius as a fraction of the shorter side (rounded_rect)
    features: tuple[Feature, ...]
    background: tuple[float, float, float]
    background_texture: float
    light_angle_deg: float  # where the main light comes from, in the image plane
    light_gradient: float  # peak-to-peak brightness change across the frame
    pose_jitter_deg: float
    shift_jitter: float  # fraction of the image
    blur_sigma_px: float
    noise_sigma: float  # in 0..1 intensity units


@dataclass(frozen=True)
class Resonance:
    """A structural resonance: natural frequency, damping ratio and how strongly it responds."""

    freq_hz: float
    damping: float
    gain: float


@dataclass(frozen=True)
class BearingGeometry:
    """Rolling bearing geometry; the defect frequencies follow as multiples of shaft speed."""

    n_balls: int
    ball_diameter_mm: float
    pitch_diameter_mm: float
    contact_angle_deg: float

    @property
    def _ratio(self) -> float:
        return (
            self.ball_diameter_mm
            / self.pitch_diameter_mm
            * math.cos(math.radians(self.contact_angle_deg))
        )

    @property
    def bpfo_order(self) -> float:
        """Ball pass frequency, outer race, per shaft revolution."""
        return self.n_balls / 2 * (1 - self._ratio)

    @property
    def bpfi_order(self) -> float:
        """Ball pass frequency, inner race, per shaft revolution."""
        return self.n_balls / 2 * (1 + self._ratio)

    @property
    def bsf_order(self) -> float:
        """Ball spin frequency per shaft revolution."""
        d, p = self.ball_diameter_mm, self.pitch_diameter_mm
        return p / (2 * d) * (1 - self._ratio**2)

    @property
    def ftf_order(self) -> float:
        """Cage (fundamental train) frequency per shaft revolution."""
        return 0.5 * (1 - self._ratio)


@dataclass(frozen=True)
class MachineSpec:
    """The rotating machine (or test stand) that each part is run on while it is measured."""

    rpm: float
    rpm_jitter: float  # part-to-part relative spread of the shaft speed
    speed_drift: float  # relative change of speed across one window
    shaft_amps_g: tuple[float, ...]  # 1x, 2x, 3x ... in g
    gear_teeth: int
    mesh_amp_g: float
    mesh_modulation: float  # depth of the shaft-rate amplitude modulation (sidebands)
    bearing: BearingGeometry
    housing: Resonance  # where bearing impacts ring, and what a crack shifts
    resonances: tuple[Resonance, ...]  # further structural modes excited by broadband forces
    broadband_g: float
    sensor_noise_g: float

    @property
    def shaft_hz(self) -> float:
        return self.rpm / 60.0

    @property
    def mesh_hz(self) -> float:
        return self.gear_teeth * self.shaft_hz


@dataclass(frozen=True)
class LineSpec:
    """One synthetic production line. Make it with `LineSpec.from_seed(seed)`."""

    seed: int
    classes: tuple[str, ...]
    modalities: tuple[str, ...]
    surface: SurfaceSpec
    geometry: PartGeometry
    machine: MachineSpec
    cycle_s: float  # time between parts
    image_size: int = 256
    sample_rate_hz: float = 25600.0
    duration_s: float = 1.0
    severity: tuple[float, float] = (0.25, 1.0)  # range of defect strength, 1 = obvious

    @property
    def name(self) -> str:
        return f"synth-{self.seed}"

    @classmethod
    def from_seed(
        cls,
        seed: int,
        *,
        modalities: tuple[str, ...] = MODALITIES,
        classes: tuple[str, ...] | None = None,
        n_classes: int | None = None,
        image_size: int = 256,
        sample_rate_hz: float = 25600.0,
        duration_s: float = 1.0,
        housing_hz: float | None = None,
    ) -> LineSpec:
        """Draw a line from `seed`. `classes` fixes the defect classes instead of drawing them;
        `housing_hz` the frequency the machine's housing rings at (where a bearing's impacts
        and a crack show) instead of drawing it in 2.3-4.7 kHz; the rest of the line is the
        same either way."""
        if seed < 0:
            msg = f"line seed must be a non-negative integer, got {seed}"
            raise ValueError(msg)
        if image_size < 64:
            msg = f"image_size must be at least 64 pixels, got {image_size}"
            raise ValueError(msg)
        if sample_rate_hz < 12000:
            msg = (
                f"sample_rate_hz must be at least 12000 Hz to hold the 1.5-5.5 kHz resonances, "
                f"got {sample_rate_hz}"
            )
            raise ValueError(msg)
        if duration_s <= 0:
            msg = f"duration_s must be positive, got {duration_s}"
            raise ValueError(msg)
        if housing_hz is not None and not 1000 <= housing_hz <= 0.4 * sample_rate_hz:
            msg = (
                f"housing_hz must lie between 1000 Hz and 0.4 x the sample rate "
                f"({0.4 * sample_rate_hz:g} Hz), got {housing_hz}"
            )
            raise ValueError(msg)
        # one independent stream per aspect: fixing the classes leaves the rest of the line as is
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 0x5EC]).spawn(5)]
        rng_classes, rng_surface, rng_geometry, rng_machine, rng_line = streams
        allowed = classes_for(tuple(modalities))
        if classes is None:
            classes = _draw_classes(rng_classes, allowed, modalities, n_classes)
        else:
            bad = [c for c in classes if c not in allowed]
            if bad or not classes:
                msg = f"classes {bad or classes!r} cannot be seen with modalities {modalities}"
                raise ValueError(msg)
        surface = _draw_surface(rng_surface)
        machine = _draw_machine(rng_machine)
        if housing_hz is not None:
            machine = replace(machine, housing=replace(machine.housing, freq_hz=float(housing_hz)))
        return cls(
            seed=seed,
            classes=tuple(classes),
            modalities=tuple(modalities),
            surface=surface,
            geometry=_draw_geometry(rng_geometry, surface.family),
            machine=machine,
            cycle_s=float(rng_line.uniform(1.5, 6.0)),
            image_size=image_size,
            sample_rate_hz=float(sample_rate_hz),
            duration_s=float(duration_s),
        )

    def with_options(self, **changes: object) -> LineSpec:
        """A copy with some fields changed (e.g. `image_size=192`)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _draw_classes(
    rng: np.random.Generator,
    allowed: tuple[str, ...],
    modalities: tuple[str, ...],
    n_classes: int | None,
) -> tuple[str, ...]:
    n = int(rng.integers(3, 6)) if n_classes is None else n_classes
    if not 1 <= n <= len(allowed):
        msg = f"n_classes must be between 1 and {len(allowed)} for {modalities}, got {n}"
        raise ValueError(msg)
    picked = [str(c) for c in rng.choice(allowed, size=n, replace=False)]
    # A two-sensor line should exercise both sensors: swap one class in if a sensor has none.
    if IMAGE in modalities and VIBRATION in modalities and n >= 2:
        for need in (IMAGE, VIBRATION):
            seen = classes_for((need,))
            if not any(c in seen for c in picked):
                options = [c for c in seen if c not in picked]
                other = VIBRATION if need == IMAGE else IMAGE
                swappable = [c for c in picked if c not in classes_for((need,))]
                # replace a class that only the other sensor sees
                only_other = [c for c in swappable if c in classes_for((other,))]
                target = only_other[-1] if only_other else picked[-1]
                picked[picked.index(target)] = str(rng.choice(options))
    order = {c: i for i, c in enumerate(allowed)}
    return tuple(sorted(picked, key=order.__getitem__))


def _rgb(values: np.ndarray) -> tuple[float, float, float]:
    r, g, b = (float(v) for v in np.clip(values, 0, 1))
    return r, g, b


def _draw_surface(rng: np.random.Generator) -> SurfaceSpec:
    family = str(rng.choice(SURFACE_FAMILIES))
    angle = float(rng.uniform(0, 180))
    if family == "brushed_metal":
        g = rng.uniform(0.55, 0.8)
        tint = rng.uniform(-0.03, 0.03, 3)
        color = _rgb(g + tint)
        return SurfaceSpec(
            family, color, rng.uniform(0.04, 0.1), rng.uniform(20, 60), angle, rng.uniform(0.1, 0.3)
        )
    if family == "cast_metal":
        g = rng.uniform(0.35, 0.6)
        tint = rng.uniform(-0.03, 0.02, 3)
        color = _rgb(g + tint)
        return SurfaceSpec(
            family,
            color,
            rng.uniform(0.05, 0.12),
            rng.uniform(1.5, 4.0),
            angle,
            rng.uniform(0.0, 0.1),
        )
    if family == "molded_plastic":
        palette = [
            (0.12, 0.12, 0.13),
            (0.15, 0.25, 0.55),
            (0.85, 0.8, 0.7),
            (0.8, 0.3, 0.12),
            (0.9, 0.9, 0.88),
            (0.35, 0.37, 0.4),
            (0.15, 0.4, 0.3),
        ]
        base = np.array(palette[int(rng.integers(len(palette)))])
        color = _rgb(base + rng.uniform(-0.05, 0.05, 3))
        return SurfaceSpec(
            family,
            color,
            rng.uniform(0.004, 0.012),
            rng.uniform(1, 3),
            angle,
            rng.uniform(0.15, 0.4),
        )
    if family == "pcb":
        masks = [(0.12, 0.42, 0.2), (0.1, 0.2, 0.5), (0.08, 0.08, 0.09), (0.5, 0.1, 0.1)]
        base = np.array(masks[int(rng.integers(len(masks)))])
        color = _rgb(base + rng.uniform(-0.04, 0.04, 3))
        accent = (0.85, 0.7, 0.35) if rng.random() < 0.6 else (0.8, 0.8, 0.82)
        return SurfaceSpec(
            family,
            color,
            rng.uniform(0.02, 0.05),
            rng.uniform(1, 3),
            0.0,
            rng.uniform(0.05, 0.2),
            accent_color=accent,
        )
    fabrics = [(0.26, 0.26, 0.28), (0.8, 0.75, 0.6), (0.85, 0.7, 0.2), (0.6, 0.62, 0.6)]
    base = np.array(fabrics[int(rng.integers(len(fabrics)))])
    color = _rgb(base + rng.uniform(-0.04, 0.04, 3))
    return SurfaceSpec(
        family,
        color,
        rng.uniform(0.15, 0.3),
        rng.uniform(1, 2),
        angle,
        rng.uniform(0.1, 0.3),
        weave_period_px=float(rng.uniform(6, 12)),
    )


def _draw_geometry(rng: np.random.Generator, family: str) -> PartGeometry:
    shape = str(rng.choice(PART_SHAPES))
    if shape == "disc":
        w = h = float(rng.uniform(0.65, 0.8))
    else:
        w = float(rng.uniform(0.68, 0.85))
        h = float(rng.uniform(0.5, 0.72))
    features = _draw_features(rng, family, shape, w / h)
    bg_gray = rng.uniform(0.08, 0.3) if rng.random() < 0.7 else rng.uniform(0.6, 0.8)
    bg = _rgb(bg_gray + rng.uniform(-0.02, 0.02, 3))
    return PartGeometry(
        shape=shape,
        width=w,
        height=h,
        corner=float(rng.uniform(0.05, 0.3)),
        features=features,
        background=bg,
        background_texture=float(rng.uniform(0.01, 0.05)),
        light_angle_deg=float(rng.uniform(0, 360)),
        light_gradient=float(rng.uniform(0.05, 0.35)),
        pose_jitter_deg=float(rng.uniform(1, 6)),
        shift_jitter=float(rng.uniform(0.01, 0.04)),
        blur_sigma_px=float(rng.uniform(0.0, 1.0)),
        noise_sigma=float(rng.uniform(0.005, 0.02)),
    )


def _draw_features(
    rng: np.random.Generator, family: str, shape: str, aspect: float
) -> tuple[Feature, ...]:
    """A feature layout that stays clear of the outline and of each other."""
    kinds = ("component", "pad", "hole") if family == "pcb" else ("hole", "boss", "slot")
    weights = (0.45, 0.35, 0.2) if family == "pcb" else (0.5, 0.3, 0.2)
    n = int(rng.integers(3, 8))
    features: list[Feature] = []
    symmetric = rng.random() < 0.5 and family != "pcb"
    tries = 0
    while len(features) < n and tries < 200:
        tries += 1
        kind = str(rng.choice(kinds, p=weights))
        size = float(rng.uniform(0.07, 0.16))
        fw, fh = size, size * aspect  # keep holes round in pixels
        if kind == "slot":
            fw, fh = size * 1.8, size * 0.7 * aspect
        elif kind == "component":
            fw, fh = float(rng.uniform(0.12, 0.3)), float(rng.uniform(0.1, 0.25)) * aspect
        elif kind == "pad":
            fw, fh = size * 0.6, size * 0.6 * aspect
        cx, cy = float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.15, 0.85))
        candidates = [Feature(kind, cx, cy, fw, fh)]
        if symmetric and abs(cx - 0.5) > fw / 2 + 0.04:  # a mirror image apart from the first
            candidates.append(Feature(kind, 1 - cx, cy, fw, fh))
        if all(_fits(c, shape) and not _overlaps(c, features) for c in candidates):
            features.extend(candidates)
    return tuple(features[: max(n, 2)])


def _fits(f: Feature, shape: str) -> bool:
    margin = 0.06
    x0, x1 = f.cx - f.width / 2 - margin, f.cx + f.width / 2 + margin
    y0, y1 = f.cy - f.height / 2 - margin, f.cy + f.height / 2 + margin
    if min(x0, y0) < 0 or max(x1, y1) > 1:
        return False
    if shape == "disc":
        corners = [(x0, y0), (x0, y1), (x1, y0), (x1, y1)]
        return all((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.24 for x, y in corners)
    return True


def _overlaps(f: Feature, others: list[Feature]) -> bool:
    pad = 0.04
    return any(
        abs(f.cx - o.cx) < (f.width + o.width) / 2 + pad
        and abs(f.cy - o.cy) < (f.height + o.height) / 2 + pad
        for o in others
    )


def _draw_machine(rng: np.random.Generator) -> MachineSpec:
    rpm = float(rng.uniform(900, 2400))
    a1 = float(rng.uniform(0.02, 0.06))
    n_balls = int(rng.integers(7, 15))
    pitch = float(rng.uniform(30, 90))
    ball = pitch * float(rng.uniform(0.15, 0.3))
    housing = Resonance(
        freq_hz=float(rng.uniform(2300, 4700)),  # inside the envelope band of the spectra
        damping=float(rng.uniform(0.02, 0.05)),
        gain=1.0,
    )
    others = tuple(
        Resonance(
            float(rng.uniform(1500, 5500)),
            float(rng.uniform(0.03, 0.08)),
            float(rng.uniform(0.3, 0.8)),
        )
        for _ in range(int(rng.integers(1, 3)))
    )
    return MachineSpec(
        rpm=rpm,
        rpm_jitter=float(rng.uniform(0.002, 0.01)),
        speed_drift=float(rng.uniform(0.002, 0.015)),
        shaft_amps_g=(a1, a1 * float(rng.uniform(0.2, 0.5)), a1 * float(rng.uniform(0.05, 0.2))),
        gear_teeth=int(rng.integers(13, 41)),
        mesh_amp_g=float(rng.uniform(0.01, 0.04)),
        mesh_modulation=float(rng.uniform(0.05, 0.25)),
        bearing=BearingGeometry(n_balls, ball, pitch, float(rng.uniform(0, 15))),
        housing=housing,
        resonances=others,
        broadband_g=float(rng.uniform(0.01, 0.03)),
        sensor_noise_g=float(rng.uniform(0.002, 0.006)),
    )
