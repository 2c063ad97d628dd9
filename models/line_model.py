"""A line model: frozen backbone, the line's prompt tokens, small heads and the good-part memory.

    base  = backbone(image, spectrum)                    prompt-free pass: the memory's features
    tuned = backbone(image, spectrum, prompts)           (method "prompt"; LoRA: its own weights)
    p_ok, class_probs = softmax(head(pool(tuned)))       known classes, from ~50 labeled parts
    z     = max(image memory(base.patch_features),       distance to the good parts, in units
                image template(image),                   of their own spread (the template
                vibration memory(base.spectrum_tokens),  only on a pose-aligned line)
                spectrum memory and template(spectrum))
    defect_score = 1 - p_ok · (1 - sigmoid(gain · (z - offset)))   noisy-OR of the two

Read-out prompts (`prompt_readout`, method "prompt"): one pass instead of two. The prompts attend
to every token but no other token attends to them (models/backbone.py), so the class, image and
spectrum tokens of the prompted pass are exactly the prompt-free ones and serve the memory; the
classifier reads the mean of the prompts' outputs next to the usual pool:

    out   = backbone(image, spectrum, prompts, readout)  the memory reads out's non-prompt tokens
    p_ok, class_probs = softmax(head([mean(out.prompts), pool(out)]))

Line folders written before read-out prompts existed keep the two-pass form (the setting is
absent from their line.json; `LineModelSettings.from_dict` reads that as off).

Defect-site pooling (`site_pool`, lines with a camera taught since it exists): a small defect is
a few patches of 64, so the mean image token barely moves; the classifier also reads the image
tokens weighted by softmax(site map / temperature), the site map being the image template's
patch scores (the image memory's on a line without a template):

    p_ok, class_probs = softmax(head([..., pool(out), site_pool(out.image_tokens, site)]))

The memory is built from the prompt-free features on purpose: they are the pretrained features,
untouched by the 50 labels, so a defect of a kind never labeled still shows as distance. The
noisy-OR lets either path fail a part: the classifier for the known defects, the memory for
everything unlike the good parts. The threshold on `defect_score` is set by the caller
(cross-validated on the adapt parts).

Static form for export: `forward(..., prompt_tokens=(B, P, D))` takes the prompts as an input
tensor and every shape is fixed by the line's settings, so one graph serves any line with the
same backbone and memory sizes.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from models.anomaly import COLOUR_FEATURES, MemoryConfig, MemoryScores, PatchMemory, local_colour
from models.backbone import InspectBackbone
from models.config import BackboneConfig
from models.outputs import BackboneOutput, Prediction
from models.spectrum_template import SpectrumTemplate
from models.template import PixelTemplate, TemplateConfig

METHODS = ("prompt", "lora", "linear")
MODALITIES = ("image", "vibration")
CLASSIFIER_FUSIONS = ("agree_z", "max_z")  # the fusions a kept classifier joins (models.adapt)
FUSIONS = ("noisy_or", "anomaly", *CLASSIFIER_FUSIONS)
ANOMALY_SOURCES = (
    "image_memory",
    "image_template",
    "vibration_memory",
    "spectrum_memory",
    "spectrum_template",
)
# the anomaly score of a missing modality: below any real one, finite for export
ABSENT_SCORE = -1.0e4


def source_present(
    name: str, image_present: Tensor | None, vibration_present: Tensor | None
) -> Tensor | None:
    """Which parts have the sensor anomaly source `name` reads (None: every part has it)."""
    return image_present if name.startswith("image") else vibration_present


@dataclass
class LineModelSettings:
    """What a line model is made of; saved in line.json ("model") to rebuild it."""

    method: str = "prompt"
    classes: list[str] = field(default_factory=list)  # defect classes (not "ok")
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    backbone: dict[str, Any] = field(default_factory=dict)  # BackboneConfig.to_diff_dict()
    n_prompt_tokens: int = 8
    # method "prompt": one pass with read-out prompts (True) or the two-pass form (False: the
    # form of every line taught before the setting existed; `from_dict` gives them False)
    prompt_readout: bool = True
    lora_rank: int = 4
    lora_targets: list[str] = field(default_factory=lambda: ["qkv", "proj"])
    memory: dict[str, Any] = field(default_factory=lambda: asdict(MemoryConfig()))
    image_memory_entries: int = 1
    vibration_memory_entries: int = 1
    spectrum_memory_entries: int = 1
    # how strongly a token is compared with good tokens at its own place (see MemoryConfig)
    image_position_weight: float = 0.0  # parts are not always in a fixture: anywhere matches
    # the image memory also compares each patch's local colour (`models.anomaly.local_colour`,
    # in units of the normalized image) with this weight beside its pretrained features; 0:
    # features only (every line taught before it, and registered lines: models.adapt)
    image_memory_colour: float = 0.0
    vibration_position_weight: float = 0.0  # the tokens carry position embeddings already
    spectrum_position_weight: float = 10.0  # a band is a frequency: compare like with like
    # the good parts' spectrum bin by bin (models.spectrum_template): one raised line, a
    # bearing fault's or a shaft harmonic's, stands out where the band memory dilutes it;
    # False for every line taught before it
    spectrum_template: bool = False
    # noisy-OR fusion: the anomaly path alone reaches 0.5 at `offset` good-part spreads
    anomaly_offset: float = 3.0
    anomaly_gain: float = 1.5
    # How the classifier and the anomaly score make one defect score (adapt picks it on the
    # out-of-fold scores, models.adapt): "noisy_or": either fails a part; "anomaly": the anomaly
    # score alone decides, the classifier only names the class; "max_z": the classifier's
    # defect log-odds, standardized by good parts like the anomaly sources (`classifier_center`,
    # `classifier_scale`), join the anomaly score's max; "agree_z" (lines taught since it
    # exists): that max, plus the smaller of the two where it too is above a typical good part
    # (both paths see the defect: their evidence adds; one path alone counts as in "max_z").
    fusion: str = "noisy_or"
    classifier_center: float = 0.0
    classifier_scale: float = 1.0
    heatmap_offset: float = 3.0  # a patch is half-hot at this many patch spreads
    # the good-part pixel template (models.template): only for a line whose frames are
    # registered to a reference part (line.json "align"); False for every line taught before it
    image_template: bool = False
    template: dict[str, Any] = field(default_factory=lambda: asdict(TemplateConfig()))
    # the frames come in at `image_scale` times the backbone's image size: the template compares
    # them at that size (fine scratches a smaller picture blurs away), the backbone sees them
    # averaged down to its own size (`LineModel.backbone_image`); 1 for every line before it
    image_scale: int = 1
    # which anomaly sources the part's anomaly score takes the largest of; adapt drops a source
    # that only adds noise on the line's labeled parts (models.adapt.select_sources)
    anomaly_sources: list[str] = field(default_factory=lambda: list(ANOMALY_SOURCES))
    # defect-site pooling: the classifier also reads the image tokens where the part looks
    # least like the good parts (`site_weights`), so a small defect is named from its own
    # place rather than from the whole part's mean; False for every line taught before it
    site_pool: bool = False
    site_temperature: float = 1.0  # in patch spreads: how sharply the hottest patches weigh
    # the heat-map of a line whose anomaly score takes the pixel template is drawn from the
    # template alone (the patch memory's coarser cells only blurred it: pixel AUROC 0.977 ->
    # 0.984 on five development lines, docs/adapt.md); False for every line taught before it,
    # whose heat-map is the largest of its image sources' patch scores
    heatmap_template_only: bool = True

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            msg = f"fusion must be one of {FUSIONS}, got {self.fusion!r}"
            raise ValueError(msg)
        if not isinstance(self.image_scale, int) or self.image_scale < 1:
            msg = f"image_scale must be a whole number >= 1, got {self.image_scale!r}"
            raise ValueError(msg)
        if self.method not in METHODS:
            msg = f"method must be one of {METHODS}, got {self.method!r}"
            raise ValueError(msg)
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities:
            msg = f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}"
            raise ValueError(msg)

    def heatmap_source(self) -> str | None:
        """What a line built from these settings shows as its heat-map: the good-part image
        sources' patch scores (`image_template` and / or `image_memory`, the modules
        `LineModel` builds from `image_template` and `image_memory_entries`), or, on a line
        taught no good part with an image, the backbone's pretrained defect map
        (`defect_map`: where a part looks most like the defects of pretraining); None on a
        line without a camera."""
        if "image" not in self.modalities:
            return None
        names = [
            name
            for name, built in (
                ("image_template", self.image_template),
                ("image_memory", self.image_memory_entries),
            )
            if built
        ]
        if self.template_draws_heatmap():
            return "image_template"
        return " + ".join(names) if names else "defect_map"

    def template_draws_heatmap(self) -> bool:
        """Whether the heat-map is the pixel template's alone (`heatmap_template_only`, on a
        line whose anomaly score takes the template)."""
        return (
            self.heatmap_template_only
            and self.image_template
            and "image_template" in self.anomaly_sources
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LineModelSettings:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in raw.items() if k in known}
        values.setdefault("prompt_readout", False)  # saved before read-out prompts: two passes
        values.setdefault("site_pool", False)  # saved before defect-site pooling: mean pool only
        values.setdefault("heatmap_template_only", False)  # saved before: every image source
        if "template" in values:  # a template saved before a setting existed had it off
            values["template"] = {
                "gradient": False,
                "scales": (),
                "highpass": 0.0,
                "modes": 0,
                **values["template"],
            }
        return cls(**values)


def readout_pool(
    out: BackboneOutput, image_present: Tensor | None, vibration_present: Tensor | None
) -> Tensor:
    """(B, 4D): the mean of the read-out prompts' outputs, then `pool_tokens`."""
    prompts = out.prompt_tokens.mean(dim=1)  # (B, D)
    return torch.cat([prompts, pool_tokens(out, image_present, vibration_present)], dim=-1)


def pool_tokens(
    out: BackboneOutput, image_present: Tensor | None, vibration_present: Tensor | None
) -> Tensor:
    """(B, 3D): class token, mean of the image tokens, mean of the spectrum tokens.

    A modality that is absent (not given, or not present for a part) contributes zeros.
    """
    B, D = out.cls.shape
    parts = [out.cls]
    for tokens, present in (
        (out.image_tokens, image_present),
        (out.spectrum_tokens, vibration_present),
    ):
        if tokens.shape[1] == 0:
            parts.append(out.cls.new_zeros(B, D))
            continue
        mean = tokens.mean(dim=1)  # (B, D)
        if present is not None:
            mean = mean * present.to(mean.dtype).unsqueeze(-1)
        parts.append(mean)
    return torch.cat(parts, dim=-1)  # (B, 3D)


def site_pool_tokens(
    image_tokens: Tensor, site: Tensor, temperature: float, image_present: Tensor | None
) -> Tensor:
    """(B, D): the image tokens weighted by softmax(site / temperature) over the patches.

    `site` (B, Ni) is the image anomaly map in patch spreads (`LineModel.site_scores`): the
    pool sits where the part differs most from the good ones. Zeros for a part without image.
    """
    if image_tokens.shape[1] == 0:
        return image_tokens.new_zeros(image_tokens.shape[0], image_tokens.shape[2])
    weights = torch.softmax(site.to(image_tokens.dtype) / temperature, dim=1)  # (B, Ni)
    pooled = (weights.unsqueeze(-1) * image_tokens).sum(dim=1)  # (B, D)
    if image_present is not None:
        pooled = pooled * image_present.to(pooled.dtype).unsqueeze(-1)
    return pooled


class LineModel(nn.Module):
    """Frozen backbone + prompt tokens + class head + good-part memories → `Prediction`."""

    def __init__(self, backbone: InspectBackbone, settings: LineModelSettings) -> None:
        super().__init__()
        self.settings = settings
        cfg = backbone.config
        dim = cfg.hidden_size
        self.backbone = backbone
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.tuned: InspectBackbone | None = None
        if settings.method == "lora":
            # LoRA's weights merged into a copy: the memory keeps the untouched pretrained pass
            self.tuned = copy.deepcopy(backbone)
        self.prompt: nn.Parameter | None = None
        if settings.method == "prompt":
            self.prompt = nn.Parameter(torch.zeros(settings.n_prompt_tokens, dim))
        n_out = len(settings.classes) + 1  # column 0 is "ok"
        n_features = (4 if self.readout else 3) * dim + (dim if settings.site_pool else 0)
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.head = nn.Linear(n_features, n_out)
        memory_cfg = MemoryConfig(
            **{**settings.memory, "position_weight": settings.image_position_weight}
        )
        self.image_memory: PatchMemory | None = None
        self.vibration_memory: PatchMemory | None = None
        self.spectrum_memory: PatchMemory | None = None
        if "image" in settings.modalities and settings.image_memory_entries:
            colour = COLOUR_FEATURES if settings.image_memory_colour else 0
            self.image_memory = PatchMemory(
                cfg.patch_feature_dim + colour, memory_cfg, settings.image_memory_entries
            )
        if "vibration" in settings.modalities and settings.vibration_memory_entries:
            token_cfg = MemoryConfig(
                **{**settings.memory, "position_weight": settings.vibration_position_weight}
            )
            self.vibration_memory = PatchMemory(dim, token_cfg, settings.vibration_memory_entries)
            # the spectrum itself, band by band: physical units any machine shares, so it works
            # even where the pretrained vibration tokens transfer poorly
            raw_cfg = MemoryConfig(
                **{
                    **settings.memory,
                    "unit_length": False,
                    "position_weight": settings.spectrum_position_weight,
                }
            )
            self.spectrum_memory = PatchMemory(
                2 * cfg.spectrum_patch, raw_cfg, settings.spectrum_memory_entries
            )
        self.spectrum_template: SpectrumTemplate | None = None
        if "vibration" in settings.modalities and settings.spectrum_template:
            self.spectrum_template = SpectrumTemplate(2, cfg.spectrum_bins, cfg.spectrum_patch)
        self.image_template: PixelTemplate | None = None
        if "image" in settings.modalities and settings.image_template:
            scale = settings.image_scale
            self.image_template = PixelTemplate(
                3,
                cfg.image_size * scale,
                cfg.patch_size * scale,  # the heat-map keeps the backbone's patch grid
                TemplateConfig(**settings.template),
            )

    feature_mean: Tensor
    feature_std: Tensor

    @property
    def config(self) -> BackboneConfig:
        return self.backbone.config

    @property
    def readout(self) -> bool:
        """True when one pass with read-out prompts serves both the memory and the classifier."""
        return self.settings.method == "prompt" and self.settings.prompt_readout

    def pool_without_site(
        self, out: BackboneOutput, image_present: Tensor | None, vibration_present: Tensor | None
    ) -> Tensor:
        """The pass's mean pool: (B, 4D) with read-out prompts, else (B, 3D)."""
        if self.readout:
            return readout_pool(out, image_present, vibration_present)
        return pool_tokens(out, image_present, vibration_present)

    def pool(
        self,
        out: BackboneOutput,
        image_present: Tensor | None,
        vibration_present: Tensor | None,
        site: Tensor | None = None,
    ) -> Tensor:
        """The classifier's pooled features of a pass: `pool_without_site`, then `with_site`."""
        pooled = self.pool_without_site(out, image_present, vibration_present)
        return self.with_site(pooled, out.image_tokens, site, image_present)

    def with_site(
        self,
        pooled: Tensor,
        image_tokens: Tensor,
        site: Tensor | None,
        image_present: Tensor | None,
    ) -> Tensor:
        """`pooled` as it is, or on a line with defect-site pooling followed by the image
        tokens pooled at the site map `site` (B, Ni) (`site_pool_tokens`): one D more."""
        if not self.settings.site_pool:
            return pooled
        if site is None:
            msg = "this line pools the image tokens at the defect site: give its site map"
            raise ValueError(msg)
        t = self.settings.site_temperature
        return torch.cat([pooled, site_pool_tokens(image_tokens, site, t, image_present)], -1)

    def site_source(self) -> str | None:
        """The anomaly source whose patch map places the defect site: the pixel template on a
        registered line, else the image memory; None when the line has neither."""
        if self.image_template is not None:
            return "image_template"
        if self.image_memory is not None:
            return "image_memory"
        return None

    def site_scores(self, base: BackboneOutput, image: Tensor | None) -> Tensor:
        """The site map (B, Ni) of parts from their prompt-free pass and registered image."""
        name = self.site_source()
        if name is None:
            msg = "defect-site pooling needs the line's image template or image memory"
            raise ValueError(msg)
        parts = self.anomaly_components(base, None, None, None, image, only={name})
        if name not in parts:
            msg = f"the site map's source {name} needs the parts' images"
            raise ValueError(msg)
        return parts[name].patch_scores

    def _prompts(self, ref: Tensor, prompt_tokens: Tensor | None) -> Tensor:
        assert self.prompt is not None  # built in __init__ for method "prompt"
        if prompt_tokens is None:
            prompt_tokens = self.prompt.unsqueeze(0).expand(ref.shape[0], -1, -1)
        return prompt_tokens

    @property
    def input_size(self) -> int:
        """The side of the square frames the line model takes (`image_scale` x the backbone's)."""
        return self.config.image_size * self.settings.image_scale

    def backbone_image(self, image: Tensor | None) -> Tensor | None:
        """The frames at the backbone's size: each `image_scale` x `image_scale` block averaged
        (the frames are normalized linearly, so this is the average of the pixels)."""
        scale = self.settings.image_scale
        if image is None or scale == 1:
            return image
        return F.avg_pool2d(image, scale)

    # -- the two passes -----------------------------------------------------------------------

    def _inputs(
        self,
        image: Tensor | None,
        spectrum: Tensor | None,
    ) -> tuple[Tensor | None, Tensor | None]:
        """Drop a modality the line does not use (its tokens would only add noise and time)."""
        if "image" not in self.settings.modalities:
            image = None
        if "vibration" not in self.settings.modalities:
            spectrum = None
        return image, spectrum

    def base_features(
        self,
        image: Tensor | None = None,
        spectrum: Tensor | None = None,
        image_present: Tensor | None = None,
        vibration_present: Tensor | None = None,
    ) -> BackboneOutput:
        """The prompt-free, untouched pretrained pass (memory features; the linear probe's too)."""
        image, spectrum = self._inputs(image, spectrum)
        return self.backbone.forward_features(
            self.backbone_image(image), spectrum, None, image_present, vibration_present
        )

    def classifier_pass(
        self,
        image: Tensor | None = None,
        spectrum: Tensor | None = None,
        image_present: Tensor | None = None,
        vibration_present: Tensor | None = None,
        prompt_tokens: Tensor | None = None,
        base: BackboneOutput | None = None,
    ) -> BackboneOutput:
        """The pass the classifier pools: prompted (read-out or not), LoRA's, or the base one."""
        image, spectrum = self._inputs(image, spectrum)
        method = self.settings.method
        if method == "linear":
            return base or self.base_features(image, spectrum, image_present, vibration_present)
        if method == "lora":
            assert self.tuned is not None  # built in __init__ for this method
            return self.tuned.forward_features(
                self.backbone_image(image), spectrum, None, image_present, vibration_present
            )
        ref = image if image is not None else spectrum
        assert ref is not None
        return self.backbone.forward_features(
            self.backbone_image(image),
            spectrum,
            self._prompts(ref, prompt_tokens),
            image_present,
            vibration_present,
            readout_prompts=self.readout,
        )

    def passes(
        self,
        image: Tensor | None = None,
        spectrum: Tensor | None = None,
        image_present: Tensor | None = None,
        vibration_present: Tensor | None = None,
        prompt_tokens: Tensor | None = None,
    ) -> tuple[BackboneOutput, BackboneOutput]:
        """The memory's prompt-free pass and the classifier's pass.

        One backbone pass with read-out prompts (its non-prompt tokens are the prompt-free
        pass's) or for the linear probe; two otherwise (prompt-free, then prompted / LoRA).
        """
        image, spectrum = self._inputs(image, spectrum)
        if self.readout:
            out = self.classifier_pass(
                image, spectrum, image_present, vibration_present, prompt_tokens
            )
            return out, out
        base = self.base_features(image, spectrum, image_present, vibration_present)
        out = self.classifier_pass(
            image, spectrum, image_present, vibration_present, prompt_tokens, base=base
        )
        return base, out

    def class_features(
        self,
        image: Tensor | None = None,
        spectrum: Tensor | None = None,
        image_present: Tensor | None = None,
        vibration_present: Tensor | None = None,
        prompt_tokens: Tensor | None = None,
        base: BackboneOutput | None = None,
        site: Tensor | None = None,
    ) -> Tensor:
        """Pooled features of the classifier's pass, before standardization (`pool`; on a line
        with defect-site pooling `site` is the parts' site map, `site_scores`)."""
        out = self.classifier_pass(
            image, spectrum, image_present, vibration_present, prompt_tokens, base
        )
        return self.pool(out, image_present, vibration_present, site)

    def features(
        self,
        image: Tensor | None = None,
        spectrum: Tensor | None = None,
        image_present: Tensor | None = None,
        vibration_present: Tensor | None = None,
        prompt_tokens: Tensor | None = None,
    ) -> tuple[BackboneOutput, Tensor]:
        """The memory's prompt-free features and the classifier's pooled features (`passes`)."""
        image, spectrum = self._inputs(image, spectrum)
        base, out = self.passes(image, spectrum, image_present, vibration_present, prompt_tokens)
        site = self.site_scores(base, image) if self.settings.site_pool else None
        return base, self.pool(out, image_present, vibration_present, site)

    def class_logits(self, pooled: Tensor) -> Tensor:
        """(B, C+1) logits, column 0 = ok, from pooled features."""
        return self.head((pooled - self.feature_mean) / self.feature_std)

    # -- the answer ---------------------------------------------------------------------------

    def anomaly_components(
        self,
        base: BackboneOutput,
        spectrum: Tensor | None,
        image_present: Tensor | None,
        vibration_present: Tensor | None,
        image: Tensor | None = None,
        only: set[str] | None = None,
    ) -> dict[str, MemoryScores]:
        """Each anomaly source's standardized scores, by name (`ANOMALY_SOURCES`).

        `only`: compute just these sources (None: every source the line has). A part without
        the source's sensor scores `ABSENT_SCORE` (below any real score).
        """
        bands = spectrum_bands(spectrum, self.config) if spectrum is not None else None
        patches = self.memory_patches(base.patch_features, image)
        tokens = base.spectrum_tokens if base.spectrum_tokens.shape[1] > 0 else None
        sources: dict[str, tuple[nn.Module | None, Tensor | None]] = {
            "image_memory": (self.image_memory, patches),
            "image_template": (self.image_template, image),
            "vibration_memory": (self.vibration_memory, tokens),
            "spectrum_memory": (self.spectrum_memory, bands),
            "spectrum_template": (self.spectrum_template, spectrum),
        }
        out: dict[str, MemoryScores] = {
            name: module(x)
            for name, (module, x) in sources.items()
            if module is not None and x is not None and (only is None or name in only)
        }
        for name, m in out.items():
            present = source_present(name, image_present, vibration_present)
            if present is not None:
                m.score = torch.where(present, m.score, torch.full_like(m.score, ABSENT_SCORE))
        return out

    def memory_patches(self, patch_features: Tensor, image: Tensor | None) -> Tensor | None:
        """What the image memory compares: the pretrained patch features (B, Ni, F), followed
        on a line with `image_memory_colour` by each patch's weighted `local_colour` of
        `image` (the frames as the line takes them, at `image_scale`); None without them."""
        if patch_features.shape[1] == 0:
            return None
        weight = self.settings.image_memory_colour
        if not weight:
            return patch_features
        if image is None:
            msg = "this line's image memory compares local colour: give the parts' images"
            raise ValueError(msg)
        colour = local_colour(image, self.config.patch_size * self.settings.image_scale)
        return torch.cat([patch_features, weight * colour], dim=-1)

    def anomaly(
        self,
        base: BackboneOutput,
        spectrum: Tensor | None,
        image_present: Tensor | None,
        vibration_present: Tensor | None,
        image: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Standardized anomaly score (B,) and image patch scores (B, Ni) (empty without image).

        The largest score of the line's anomaly sources (`settings.anomaly_sources`, chosen at
        adapt time by what separates the labeled parts): image memory, image template (it needs
        the pixel `image`), vibration memories. The heat-map's patch scores are the larger of
        the chosen image sources' (of both when neither was chosen).
        """
        score, patch, _ = self._anomaly(base, spectrum, image_present, vibration_present, image)
        return score, patch

    def _anomaly(
        self,
        base: BackboneOutput,
        spectrum: Tensor | None,
        image_present: Tensor | None,
        vibration_present: Tensor | None,
        image: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """`anomaly`, and the site map on a line with defect-site pooling (one computation)."""
        B = base.cls.shape[0]
        wanted = set(self.settings.anomaly_sources)
        if not any(n.startswith("image") for n in wanted):  # the heat-map still needs one
            wanted |= {n for n in ANOMALY_SOURCES if n.startswith("image")}
        site_name = self.site_source() if self.settings.site_pool else None
        if site_name is not None:
            wanted.add(site_name)
        parts = self.anomaly_components(
            base, spectrum, image_present, vibration_present, image, only=wanted
        )
        chosen = [n for n in parts if n in self.settings.anomaly_sources]
        scores = [base.cls.new_full((B,), ABSENT_SCORE)] + [parts[n].score for n in chosen]
        image_sources = [n for n in chosen if n.startswith("image")] or [
            n for n in parts if n.startswith("image")
        ]
        if self.settings.template_draws_heatmap():
            image_sources = ["image_template"]
        patches = [parts[n].patch_scores for n in image_sources]
        if patches:
            patch = torch.stack(patches, dim=0).max(dim=0).values
        elif base.image_tokens.shape[1] > 0:  # no good part to compare with: the pretrained map
            patch = self.backbone.defect_map(base.image_tokens) + self.settings.heatmap_offset
        else:
            patch = base.cls.new_zeros(B, 0)
        site = parts[site_name].patch_scores if site_name in parts else None
        return torch.stack(scores, dim=0).max(dim=0).values, patch, site

    def fuse(self, logits: Tensor, anomaly_score: Tensor) -> tuple[Tensor, Tensor]:
        """defect_score (B,) and class_probs (B, C) from class logits and the anomaly score."""
        probs = logits.softmax(dim=-1)  # (B, C+1)
        p_ok = probs[:, 0]
        s = self.settings
        p_anomalous = torch.sigmoid(s.anomaly_gain * (anomaly_score - s.anomaly_offset))
        noisy_or = 1.0 - p_ok * (1.0 - p_anomalous)
        if s.fusion == "anomaly":
            defect_score = p_anomalous
        elif s.fusion in CLASSIFIER_FUSIONS and logits.shape[1] > 1:
            classifier = self.classifier_z(logits)
            z = torch.maximum(anomaly_score, classifier)
            if s.fusion == "agree_z":
                z = z + torch.relu(torch.minimum(anomaly_score, classifier))
            defect_score = torch.sigmoid(s.anomaly_gain * (z - s.anomaly_offset))
        else:
            defect_score = noisy_or
        defects = probs[:, 1:]
        class_probs = defects / defects.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return defect_score, class_probs

    def classifier_z(self, logits: Tensor) -> Tensor:
        """The classifier's defect log-odds log(p_defect / p_ok), in good-part spreads (B,)."""
        log_odds = torch.logsumexp(logits[:, 1:], dim=-1) - logits[:, 0]
        s = self.settings
        return (log_odds - s.classifier_center) / s.classifier_scale

    def heatmap_source(self) -> str | None:
        """What the heat-map shows (`LineModelSettings.heatmap_source`)."""
        return self.settings.heatmap_source()

    def heatmap(self, patch_scores: Tensor, B: int, image_present: Tensor | None) -> Tensor:
        """(B, h, w) in [0, 1] from the image patch scores (`heatmap_source`; the defect map's
        logits come shifted by `heatmap_offset`, so its heat is their sigmoid); zeros on a
        line without a camera."""
        rows, cols = self.config.grid
        if patch_scores.shape[1] == 0:
            return patch_scores.new_zeros(B, rows, cols)
        heat = torch.sigmoid(patch_scores - self.settings.heatmap_offset)
        if image_present is not None:
            heat = heat * image_present.to(heat.dtype).unsqueeze(-1)
        return heat.view(B, rows, cols)  # (B, h, w)

    def forward(
        self,
        image: Tensor | None = None,
        spectrum: Tensor | None = None,
        image_present: Tensor | None = None,
        vibration_present: Tensor | None = None,
        prompt_tokens: Tensor | None = None,
    ) -> Prediction:
        image, spectrum = self._inputs(image, spectrum)
        base, out = self.passes(image, spectrum, image_present, vibration_present, prompt_tokens)
        anomaly_score, patch, site = self._anomaly(
            base, spectrum, image_present, vibration_present, image
        )
        logits = self.class_logits(self.pool(out, image_present, vibration_present, site))
        defect_score, class_probs = self.fuse(logits, anomaly_score)
        return Prediction(
            defect_score=defect_score,
            class_probs=class_probs,
            heatmap=self.heatmap(patch, base.cls.shape[0], image_present),
            anomaly_score=anomaly_score,
        )

    # -- storage ------------------------------------------------------------------------------

    def line_state(self) -> dict[str, Tensor]:
        """What weights.safetensors holds: everything but the frozen pretrained backbone."""
        return {
            k: v.detach().contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith("backbone.")
        }

    def save(self, folder: Path) -> None:
        save_file(self.line_state(), str(folder / "weights.safetensors"))

    @classmethod
    def load(
        cls, folder: Path, settings: dict[str, Any], backbone: InspectBackbone | None = None
    ) -> LineModel:
        """Rebuild from `folder/weights.safetensors` and the settings saved in line.json."""
        s = LineModelSettings.from_dict(settings)
        if backbone is None:
            backbone = load_backbone(s.backbone)
        model = cls(backbone, s)
        state = load_file(str(folder / "weights.safetensors"))
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("backbone.")]
        if missing or unexpected:
            msg = (
                f"{folder / 'weights.safetensors'} does not match the line's settings: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
            raise ValueError(msg)
        model.eval()
        return model


def spectrum_bands(spectrum: Tensor, config: BackboneConfig) -> Tensor:
    """(B, 2, F) spectrum → (B, F/p, 2p) bands: both channels of `p` neighbouring bins each."""
    B, C, F_ = spectrum.shape
    p = config.spectrum_patch
    bands = spectrum.reshape(B, C, F_ // p, p)  # (B, 2, F/p, p)
    return bands.permute(0, 2, 1, 3).reshape(B, F_ // p, C * p)  # (B, F/p, 2p)


def random_backbone(
    config: BackboneConfig, seed: int = 0
) -> tuple[InspectBackbone, dict[str, Any]]:
    """A seeded randomly initialised backbone and the spec that rebuilds it (`load_backbone`)."""
    torch.manual_seed(seed)
    backbone = InspectBackbone(config).eval()
    spec = {
        "size": config.size_name,
        "pretrained": False,
        "init_seed": seed,
        "config": config.to_diff_dict(),
    }
    return backbone, spec


def load_backbone(spec: dict[str, Any]) -> InspectBackbone:
    """The backbone a line was taught on: the shipped checkpoint of its size, or the seeded
    random one it was taught on when no checkpoint was shipped (`random_backbone`)."""
    from models.backbone import load_pretrained

    size = str(spec.get("size", "tiny"))
    if spec.get("pretrained", True):
        return load_pretrained(size)
    if "config" in spec:
        raw = {
            k: v
            for k, v in spec["config"].items()
            if k not in ("model_type", "transformers_version")
        }
        config = BackboneConfig(**raw)
    else:
        config = BackboneConfig.named(size)
    backbone, _ = random_backbone(config, int(spec.get("init_seed", 0)))
    return backbone
