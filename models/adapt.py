"""Teaching a line model from a few labeled parts (pure torch; no files, no datasets).

One recipe, three ways to adapt the frozen backbone (`AdaptConfig.method`):

- `prompt` (default): peft prompt tuning (`PromptTuningConfig`, `FEATURE_EXTRACTION`): a few
  virtual tokens are learned and passed to the backbone as `inputs_embeds`, with the class head.
  With `prompt_readout` (the default) they are read-out prompts: one backbone pass per part
  gives both the memory's prompt-free features and the classifier's input.
- `lora`: peft LoRA on the attention projections (`qkv`, `proj`), with the class head; merged
  into a copy of the backbone afterwards (the memory keeps the untouched pretrained pass).
- `linear`: a linear probe: only the class head, on the pretrained pass.

Every method also builds the good-part memories from the prompt-free features of the good parts
and warm-starts the head on frozen features (seconds), so the few backbone passes with gradients
are spent refining, not starting from scratch.

Cross-validation: the same recipe is run on k stratified folds; each part is scored by the
model that did not see it. These out-of-fold scores are what the caller sets the threshold on and
reports the expected miss and false-reject rates from.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.anomaly import MemoryConfig, robust_spread
from models.backbone import InspectBackbone
from models.inputs import ModelInputs
from models.line_model import (
    ABSENT_SCORE,
    ANOMALY_SOURCES,
    CLASSIFIER_FUSIONS,
    LineModel,
    LineModelSettings,
    pool_tokens,
    source_present,
    spectrum_bands,
)
from models.outputs import BackboneOutput
from models.template import TemplateConfig

_PASS_BATCH = 25  # parts per no-grad backbone pass: bounds memory, keeps 2 cores busy


@dataclass
class AdaptConfig:
    """How a line is taught. Defaults fit 50 parts in under 2 minutes on 2 CPU cores."""

    method: str = "prompt"
    n_prompt_tokens: int = 8
    # method "prompt": read-out prompts, one backbone pass per part (models/line_model.py)
    prompt_readout: bool = True
    epochs: int = 3  # passes with gradients through the backbone (prompt / lora)
    batch_size: int = 16
    lr: float = 1e-2  # prompt tokens / LoRA weights, and the head while they train
    head_steps: int = 300  # warm start of the head on frozen features (cheap)
    head_lr: float = 5e-2
    weight_decay: float = 1e-3
    folds: int = 3  # cross-validation folds for the out-of-fold scores (0: none)
    lora_rank: int = 4
    # LoRA changes every block's weights; the backbone's weights are small (std 0.02), so a
    # prompt-sized step would swamp them
    lora_lr: float = 1e-3
    seed: int = 0
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    # the weight of each patch's local colour in the image memory of a line without the pixel
    # template (LineModelSettings.image_memory_colour): the pretrained features ignore
    # brightness, so a blotch on plain steel looked like good steel. On crops of real steel
    # strip (benchmarks/neu_crops.py, 3 seeds) the memory caught blotches at AUROC 0.811
    # without, 0.921 with it, the other three kinds level. A registered line's template
    # compares colour pixel by pixel already; there the memory's colour only added shading
    # (development lines, fused AUROC 0.968 -> 0.957)
    memory_colour: float = 4.0
    # the good-part pixel template (models.template): for lines whose frames are registered to
    # a reference part (`inspect-app adapt --align`); the caller sets it
    image_template: bool = False
    # in pixels at the backbone's image size; `image_scale` scales it (TemplateConfig.at_scale)
    template: TemplateConfig = field(default_factory=TemplateConfig)
    # the frames are `image_scale` x the backbone's image size (LineModelSettings.image_scale):
    # the template compares them at that size; the caller sets it with the template
    image_scale: int = 1
    # the good parts' spectrum bin by bin (models.spectrum_template), beside the band memory
    spectrum_template: bool = True
    # keep only the anomaly sources that help on the out-of-fold scores (select_sources)
    select_sources: bool = True
    select_fusion: bool = True  # agree_z / anomaly fusion (False: the noisy-OR of older lines)
    # how a kept classifier joins the anomaly score: "agree_z" (their max, plus the smaller
    # where both are above a typical good part) or "max_z" (their max: lines taught before)
    classifier_fusion: str = "agree_z"
    source_margin: float = 0.02
    target_miss_rate: float = 0.005  # the choices above must not raise the reject rate at it
    anomaly_offset: float = 3.0
    anomaly_gain: float = 1.5
    # the classifier also pools the image tokens at the defect site (models/line_model.py);
    # needs good parts with images (the site map is their template or memory)
    site_pool: bool = True

    def __post_init__(self) -> None:
        if self.classifier_fusion not in CLASSIFIER_FUSIONS:
            msg = f"classifier_fusion must be one of {CLASSIFIER_FUSIONS}, got "
            msg += f"{self.classifier_fusion!r}"
            raise ValueError(msg)


@dataclass
class AdaptData:
    """The labeled parts: inputs for all of them, labels as indices (0 = ok, c+1 = classes[c])."""

    inputs: ModelInputs
    labels: Tensor  # (N,) long
    classes: list[str]
    modalities: list[str]

    def __post_init__(self) -> None:
        n = int(self.labels.shape[0])
        for name, t in (("image", self.inputs.image), ("spectrum", self.inputs.spectrum)):
            if t is not None and t.shape[0] != n:
                msg = f"{name} has {t.shape[0]} parts but there are {n} labels"
                raise ValueError(msg)
        if n == 0:
            msg = "no parts to adapt on"
            raise ValueError(msg)
        if int(self.labels.max()) > len(self.classes) or int(self.labels.min()) < 0:
            msg = f"labels must be in 0..{len(self.classes)} (0 = ok), got {self.labels.tolist()}"
            raise ValueError(msg)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: Tensor) -> ModelInputs:
        def take(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[idx]

        i = self.inputs
        return ModelInputs(
            image=take(i.image),
            spectrum=take(i.spectrum),
            image_present=take(i.image_present),
            vibration_present=take(i.vibration_present),
        )


@dataclass
class OutOfFold:
    """Each part scored by a model that never saw it."""

    defect_score: Tensor  # (N,)
    anomaly_score: Tensor  # (N,)
    predicted_class: Tensor  # (N,) index into classes (argmax of class_probs), -1 without classes
    fold: Tensor  # (N,)
    # each anomaly source's and the classifier's score (N,), in good-part spreads, by name: the
    # sources adapt chose from, kept or not (`ABSENT_SCORE` where the part lacks the sensor)
    sources: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class AdaptResult:
    """The taught model, its out-of-fold scores and what it cost."""

    model: LineModel
    oof: OutOfFold | None
    seconds: float
    peft_model: nn.Module | None = None  # for `save_pretrained` of the adapter


@dataclass
class _Frozen:
    """Prompt-free features of every part, computed once."""

    patch_features: Tensor  # (N, Ni, Dm)
    image_tokens: Tensor  # (N, Ni, D) what defect-site pooling weighs
    spectrum_tokens: Tensor  # (N, Ns, D)
    spectrum_bands: Tensor  # (N, F/p, 2p) the raw spectrum, band by band
    pooled: Tensor  # (N, 3D), (N, 4D) with read-out prompts; without the site pool


def stratified_folds(labels: Tensor, k: int, seed: int) -> Tensor:
    """Fold index (N,) in 0..k-1: each label's parts dealt round-robin after a seeded shuffle."""
    gen = torch.Generator().manual_seed(seed)
    fold = torch.empty_like(labels)
    offset = 0
    for value in torch.unique(labels):
        idx = torch.nonzero(labels == value).squeeze(1)
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        fold[idx] = (torch.arange(idx.numel()) + offset) % k
        offset += idx.numel()  # the next label starts where this one stopped: folds stay even
    return fold


def _settings(backbone: InspectBackbone, data: AdaptData, cfg: AdaptConfig) -> LineModelSettings:
    from dataclasses import asdict

    template = cfg.image_template and "image" in data.modalities
    return LineModelSettings(
        method=cfg.method,
        classes=list(data.classes),
        modalities=list(data.modalities),
        n_prompt_tokens=cfg.n_prompt_tokens,
        prompt_readout=cfg.prompt_readout and cfg.method == "prompt",
        lora_rank=cfg.lora_rank,
        memory=asdict(cfg.memory),
        image_template=template,
        image_memory_colour=0.0 if template else cfg.memory_colour,
        template=asdict(cfg.template.at_scale(cfg.image_scale)),
        image_scale=cfg.image_scale,
        anomaly_offset=cfg.anomaly_offset,
        anomaly_gain=cfg.anomaly_gain,
        site_pool=cfg.site_pool and "image" in data.modalities,
        spectrum_template=cfg.spectrum_template and "vibration" in data.modalities,
    )


@torch.no_grad()
def _frozen_pass(model: LineModel, inputs: ModelInputs, tick: Callable[[int], None]) -> _Frozen:
    patches, tokens, spectra, pooled = [], [], [], []
    n = _count(inputs)
    cfg = model.config
    bands = (
        spectrum_bands(inputs.spectrum, cfg)
        if inputs.spectrum is not None
        else torch.zeros(n, 0, 2 * cfg.spectrum_patch)
    )
    for start in range(0, n, _PASS_BATCH):
        part = _slice(inputs, start, start + _PASS_BATCH)
        if model.readout:  # one pass: the prompt-free tokens and the initial prompts' read-out
            out = model.passes(**part.as_kwargs())[0]
            pool = model.pool_without_site(out, part.image_present, part.vibration_present)
        else:
            out = model.base_features(**part.as_kwargs())
            pool = pool_tokens(out, part.image_present, part.vibration_present)
        patches.append(out.patch_features)
        tokens.append(out.image_tokens)
        spectra.append(out.spectrum_tokens)
        pooled.append(pool)
        tick(_count(part))
    return _Frozen(
        torch.cat(patches), torch.cat(tokens), torch.cat(spectra), bands, torch.cat(pooled)
    )


def _frozen_output(model: LineModel, frozen: _Frozen, idx: Tensor) -> BackboneOutput:
    """The parts' prompt-free pass as far as the anomaly sources read it."""
    n, dim = idx.numel(), model.config.hidden_size
    return BackboneOutput(
        cls=torch.zeros(n, dim),
        image_tokens=frozen.image_tokens[idx],
        spectrum_tokens=frozen.spectrum_tokens[idx],
        prompt_tokens=torch.zeros(n, 0, dim),
        grid=model.config.grid,
        patch_features=frozen.patch_features[idx],
    )


@torch.no_grad()
def _site_maps(model: LineModel, frozen: _Frozen, inputs: ModelInputs, idx: Tensor) -> Tensor:
    """The parts' defect-site maps (n, Ni) from the line's fitted template or memory."""
    image = None if inputs.image is None else inputs.image[idx]
    return model.site_scores(_frozen_output(model, frozen, idx), image)


def _count(inputs: ModelInputs) -> int:
    ref = inputs.image if inputs.image is not None else inputs.spectrum
    assert ref is not None
    return int(ref.shape[0])


def _slice(inputs: ModelInputs, start: int, stop: int) -> ModelInputs:
    def take(t: Tensor | None) -> Tensor | None:
        return None if t is None else t[start:stop]

    return ModelInputs(
        take(inputs.image),
        take(inputs.spectrum),
        take(inputs.image_present),
        take(inputs.vibration_present),
    )


def _class_weights(labels: Tensor, n_out: int) -> Tensor:
    counts = torch.bincount(labels, minlength=n_out).float()
    w = torch.where(counts > 0, labels.numel() / (counts.clamp_min(1) * (counts > 0).sum()), 0.0)
    return w


def _fit_memories(
    model: LineModel,
    frozen: _Frozen,
    good: Tensor,
    seed: int,
    inputs: ModelInputs,
    leave_one_out: bool = False,
) -> None:
    """Fit the image / vibration memories and the templates on the good parts (none without).

    `leave_one_out`: standardize each by every good part's score against all the others (the
    taught line's own sources: its good parts' leave-out scores then stand for a new good
    part's, `_final_sources`), else against the others but a fifth (the folds' sources).
    """
    s = model.settings

    def groups(n: int) -> Tensor | None:
        return torch.arange(n) if leave_one_out else None

    if good.numel() == 0:
        model.image_memory = model.vibration_memory = model.spectrum_memory = None
        model.image_template = model.spectrum_template = None
        s.image_memory_entries = s.vibration_memory_entries = s.spectrum_memory_entries = 0
        s.image_template = s.spectrum_template = False
        return
    if model.image_template is not None:
        images = _sensed(inputs.image, inputs.image_present, good, "the image template", "images")
        model.image_template.fit(images, groups(images.shape[0]))
    if model.image_memory is not None:
        image = None if inputs.image is None else inputs.image[good]
        patches = model.memory_patches(frozen.patch_features[good], image)
        assert patches is not None  # a line with an image memory has patch features
        model.image_memory.fit(patches, groups(good.numel()), seed=seed)
        s.image_memory_entries = int(model.image_memory.bank.shape[0])
    if model.vibration_memory is not None:
        model.vibration_memory.fit(frozen.spectrum_tokens[good], groups(good.numel()), seed=seed)
        s.vibration_memory_entries = int(model.vibration_memory.bank.shape[0])
    if model.spectrum_memory is not None:
        model.spectrum_memory.fit(frozen.spectrum_bands[good], groups(good.numel()), seed=seed)
        s.spectrum_memory_entries = int(model.spectrum_memory.bank.shape[0])
    if model.spectrum_template is not None:
        spectra = _sensed(
            inputs.spectrum, inputs.vibration_present, good, "the spectrum template", "spectra"
        )
        model.spectrum_template.fit(spectra, groups(spectra.shape[0]))


def _sensed(
    readings: Tensor | None, present: Tensor | None, good: Tensor, user: str, what: str
) -> Tensor:
    """The good parts' `readings` (images or spectra), only those whose sensor read them:
    what a template is fitted on. `user` and `what` name them in the error."""
    if readings is None:
        msg = f"{user} needs the good parts' {what}"
        raise ValueError(msg)
    chosen = readings[good]
    return chosen if present is None else chosen[present[good]]


def _fit_head(model: LineModel, pooled: Tensor, labels: Tensor, cfg: AdaptConfig) -> None:
    """Warm start: standardize the frozen features, then fit the head on them (full batch)."""
    model.feature_mean = pooled.mean(0)
    std = pooled.std(0, unbiased=False).clamp_min(1e-4)
    d = model.config.hidden_size if model.readout else 0
    if d:
        # the initial prompts are small and read nearly the same from every part; their
        # outputs move once trained, so their spread must not be taken as the unit
        std[:d] = std[:d].clamp_min(float(std[d:].median()))
    model.feature_std = std
    weights = _class_weights(labels, model.head.out_features)
    opt = torch.optim.AdamW(model.head.parameters(), lr=cfg.head_lr, weight_decay=cfg.weight_decay)
    with torch.no_grad():
        x = (pooled - model.feature_mean) / model.feature_std
        # read-out prompts: the warm start is the linear probe's; the prompts' weights start at
        # zero and are learned with the prompts (fitted now they would fit noise that the
        # prompt training then scales up)
        x[:, :d] = 0.0
        model.head.weight[:, :d] = 0.0
    with _one_thread():  # tiny steps: thread hand-offs would cost more than the maths
        for _ in range(cfg.head_steps):
            opt.zero_grad()
            loss = F.cross_entropy(model.head(x), labels, weight=weights)
            loss.backward()
            opt.step()


@contextmanager
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _peft_quietly() -> Iterator[None]:
    """peft reads transformers' deprecated `is_gradient_checkpointing` while it wraps a model,
    and transformers warns about it: a warning between the libraries, nothing a user can act
    on, printed in every adapt's output. Only that warning is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing.*deprecated", category=FutureWarning
        )
        yield


def _peft_prompt(model: LineModel, cfg: AdaptConfig) -> Any:
    from peft import PromptTuningConfig, TaskType, get_peft_model

    bcfg = model.config
    pcfg = PromptTuningConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        num_virtual_tokens=cfg.n_prompt_tokens,
        token_dim=bcfg.hidden_size,
        num_transformer_submodules=1,
        num_attention_heads=bcfg.num_attention_heads,
        num_layers=bcfg.num_hidden_layers,
    )
    with _peft_quietly():
        peft_model = get_peft_model(model.backbone, pcfg)
    assert model.prompt is not None
    encoder: Any = peft_model.prompt_encoder["default"]
    with torch.no_grad():
        encoder.embedding.weight.copy_(model.prompt)
    return peft_model


def _peft_lora(model: LineModel, cfg: AdaptConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    assert model.tuned is not None
    lcfg = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=2 * cfg.lora_rank,
        lora_dropout=0.0,
        target_modules=list(model.settings.lora_targets),
    )
    with _peft_quietly():
        return get_peft_model(model.tuned, lcfg)


def _trainable(module: nn.Module, keep: Callable[[str], bool]) -> list[nn.Parameter]:
    params = []
    for name, p in module.named_parameters():
        p.requires_grad_(keep(name))
        if p.requires_grad:
            params.append(p)
    return params


def _fit_once(
    backbone: InspectBackbone,
    data: AdaptData,
    frozen: _Frozen,
    start_pooled: Tensor,
    idx: Tensor,
    cfg: AdaptConfig,
    tick: Callable[[int], None],
) -> tuple[LineModel, nn.Module | None]:
    """The recipe on the parts `idx`: memories, head warm start, then prompt / LoRA epochs."""
    torch.manual_seed(cfg.seed)  # head and LoRA initializations: the same run gives the same line
    settings = _settings(backbone, data, cfg)
    labels = data.labels[idx]
    # the site map is the good parts' template or memory: there is none without good parts
    settings.site_pool = settings.site_pool and bool((labels == 0).any())
    model = LineModel(backbone, settings).eval()
    if model.prompt is not None:
        model.prompt.data.copy_(_initial_prompt(backbone, cfg))
    final = idx.numel() == len(data)  # the taught line itself, not a fold's model
    _fit_memories(model, frozen, idx[labels == 0], cfg.seed, data.inputs, leave_one_out=final)
    site = (
        _site_maps(model, frozen, data.inputs, torch.arange(len(data)))
        if settings.site_pool
        else None
    )
    present = data.inputs.image_present
    warm = model.with_site(
        start_pooled[idx],
        frozen.image_tokens[idx],
        None if site is None else site[idx],
        None if present is None else present[idx],
    )
    _fit_head(model, warm, labels, cfg)
    if cfg.method == "linear":
        return model, None
    peft_model = _peft_prompt(model, cfg) if cfg.method == "prompt" else _peft_lora(model, cfg)
    peft_model.eval()  # no dropout, no routing-bias updates: the backbone stays as it was
    params = _trainable(peft_model, lambda n: "prompt_encoder" in n or "lora_" in n)
    opt = torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": cfg.lr if cfg.method == "prompt" else cfg.lora_lr,
                "weight_decay": 0.0,
            },
            {"params": list(model.head.parameters()), "lr": cfg.lr},
        ],
        weight_decay=cfg.weight_decay,
    )
    weights = _class_weights(labels, model.head.out_features)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    for _ in range(cfg.epochs):
        order = idx[torch.randperm(idx.numel(), generator=gen)]
        for start in range(0, order.numel(), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            inputs = data.subset(batch)
            image, spectrum = model._inputs(inputs.image, inputs.spectrum)
            kwargs = {
                "image": model.backbone_image(image),
                "spectrum": spectrum,
                "image_present": inputs.image_present,
                "vibration_present": inputs.vibration_present,
            }
            if cfg.method == "prompt":
                empty = torch.zeros(batch.numel(), 0, model.config.hidden_size)
                out = peft_model(inputs_embeds=empty, readout_prompts=model.readout, **kwargs)
            else:
                out = peft_model(**kwargs)
            pooled = model.pool(
                out,
                inputs.image_present,
                inputs.vibration_present,
                None if site is None else site[batch],
            )
            loss = F.cross_entropy(model.class_logits(pooled), data.labels[batch], weight=weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tick(batch.numel())
    for p in peft_model.parameters():
        p.requires_grad_(False)
    if cfg.method == "prompt":
        assert model.prompt is not None
        model.prompt.data.copy_(peft_model.get_prompt_embedding_to_save("default"))
        return model, peft_model
    adapter = copy.deepcopy(peft_model)
    model.tuned = peft_model.merge_and_unload()  # type: ignore[operator]
    return model, adapter


def _initial_prompt(backbone: InspectBackbone, cfg: AdaptConfig) -> Tensor:
    """Small random prompts, seeded: they start as a slight nudge, not a disruption."""
    gen = torch.Generator().manual_seed(cfg.seed)
    dim = backbone.config.hidden_size
    return torch.randn(cfg.n_prompt_tokens, dim, generator=gen) * backbone.config.initializer_range


@dataclass
class _Scored:
    """Out-of-fold outputs of some parts: class logits and each anomaly source's score."""

    logits: Tensor  # (n, C+1)
    sources: dict[str, Tensor]  # name -> (n,)
    # the fold's memories' part-score standardization, name -> (center, scale): the out-of-fold
    # scores are put on the final model's scale with it (`_on_final_scale`)
    memory_stats: dict[str, tuple[float, float]] = field(default_factory=dict)


@torch.no_grad()
def _score(model: LineModel, data: AdaptData, frozen: _Frozen, idx: Tensor) -> _Scored:
    """Class logits and anomaly-source scores of the parts `idx` (out of fold)."""
    inputs = data.subset(idx)
    base = _frozen_output(model, frozen, idx)
    spectrum = model._inputs(None, inputs.spectrum)[1]
    sources = model.anomaly_components(
        base, spectrum, inputs.image_present, inputs.vibration_present, inputs.image
    )
    # the site map is one of the sources' patch maps: computed once, above
    site_name = model.site_source() if model.settings.site_pool else None
    site = sources[site_name].patch_scores if site_name in sources else None
    if model.settings.method == "linear":
        pooled = model.with_site(
            frozen.pooled[idx], frozen.image_tokens[idx], site, inputs.image_present
        )
    else:
        chunks = []
        for start in range(0, idx.numel(), _PASS_BATCH):
            part = _slice(inputs, start, start + _PASS_BATCH)
            chunk_site = None if site is None else site[start : start + _PASS_BATCH]
            chunks.append(model.class_features(**part.as_kwargs(), site=chunk_site))
        pooled = torch.cat(chunks)
    return _Scored(
        model.class_logits(pooled),
        {k: v.score for k, v in sources.items()},
        _memory_stats(model),
    )


_MEMORY_SOURCES = tuple(n for n in ANOMALY_SOURCES if n.endswith("_memory"))
"""The anomaly sources that are good-part memories (`PatchMemory`): one distance, one unit."""


def _memory_stats(model: LineModel) -> dict[str, tuple[float, float]]:
    """(center, scale) of each of the model's good-part memories' part scores."""
    out = {}
    for name in _MEMORY_SOURCES:
        memory = getattr(model, name)
        if memory is not None:
            center, scale = memory.stats[:2].tolist()
            out[name] = (float(center), float(scale))
    return out


@torch.no_grad()
def _final_sources(model: LineModel, frozen: _Frozen, data: AdaptData) -> dict[str, Tensor]:
    """The adapt parts' anomaly-source scores as the taught line will give them, by name.

    The memories and the template hold good parts only: a defective part was never in them, so
    the final model scores it exactly as it will score a new defective part. A good part gets
    its leave-one-out score from the final fit (against every other good part, as its
    standardization measures them). A fold's source holds a third fewer good parts, so its
    distances run higher on every part: the threshold set on them sat above defects that the
    final model scores lower (docs/adapt.md, step 7). NaN marks a good part without a
    leave-out score (too few good parts to have one): the fold's score stays for it.
    """
    idx = torch.arange(len(data))
    inputs = data.inputs
    spectrum = model._inputs(None, inputs.spectrum)[1]
    found = model.anomaly_components(
        _frozen_output(model, frozen, idx),
        spectrum,
        inputs.image_present,
        inputs.vibration_present,
        inputs.image,
    )
    good = torch.nonzero(data.labels == 0).squeeze(1)
    out = {}
    for name, m in found.items():
        score = m.score.clone()
        leave_out = getattr(model, name).leave_out
        fitted = good
        present = source_present(name, inputs.image_present, inputs.vibration_present)
        if name.endswith("_template") and present is not None:
            fitted = good[present[good]]  # a template is fitted on its sensor's good parts only
        if leave_out is None or leave_out.numel() != fitted.numel():
            score[good] = float("nan")
        else:
            score[fitted] = leave_out
        if present is not None:
            score = torch.where(present, score, torch.full_like(score, ABSENT_SCORE))
        out[name] = score
    return out


def _on_final_scale(
    z: Tensor, fold: tuple[float, float], final: tuple[float, float] | None
) -> Tensor:
    """A fold memory's standardized scores `z` in the final memory's units.

    Every memory measures the same distance (to the nearest good token, in the frozen
    backbone's features), but each standardizes it by its own good parts' spread; with few good
    parts a fold's spread and the final one's differ by a factor of several, and a threshold set
    on the folds' units would not hold for the final model. Absent parts stay absent.
    """
    if final is None:
        return z
    raw = z * fold[1] + fold[0]
    return torch.where(z == ABSENT_SCORE, z, (raw - final[0]) / final[1])


def rank_auroc(scores: Tensor, positive: Tensor) -> float:
    """AUROC by the Mann-Whitney U statistic (ties count half); 0.5 when a side is empty."""
    pos, neg = scores[positive], scores[~positive]
    if pos.numel() == 0 or neg.numel() == 0:
        return 0.5
    diff = pos.unsqueeze(1) - neg.unsqueeze(0)
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


def reject_rate_at(scores: Tensor, defective: Tensor, miss_rate: float) -> float:
    """The share of good parts at or above the highest threshold that misses at most
    `miss_rate` of the defective ones (what the line pays for that miss rate)."""
    bad = scores[defective].sort().values
    good = scores[~defective]
    if bad.numel() == 0 or good.numel() == 0:
        return 0.0
    allowed = int(miss_rate * bad.numel())  # parts that may be missed
    return float((good >= bad[allowed]).float().mean())


def _better(
    new: Tensor, old: Tensor, defective: Tensor, margin: float, miss_rate: float
) -> tuple[bool, float]:
    """Is `new` a better defect score than `old` on the labeled parts? (and its AUROC)

    Better: its AUROC is higher by more than `margin` and the false-reject rate at the target
    miss rate is not worse.
    """
    auc_new, auc_old = rank_auroc(new, defective), rank_auroc(old, defective)
    frr_new = reject_rate_at(new, defective, miss_rate)
    frr_old = reject_rate_at(old, defective, miss_rate)
    return auc_new > auc_old + margin and frr_new <= frr_old, auc_new


def select_sources(
    sources: dict[str, Tensor], defective: Tensor, margin: float, miss_rate: float = 0.005
) -> list[str]:
    """The anomaly sources whose largest score separates the labeled parts best.

    Backward elimination on out-of-fold scores: drop the source whose removal raises the
    AUROC of the max of the others the most, while that gain exceeds `margin` and the
    false-reject rate at `miss_rate` does not get worse. A source that catches even a few
    defects the others miss stays; one that only adds noise on this line goes. Every sensor
    keeps at least one source: a defect kind never labeled may show on that sensor alone. All
    stay when the parts cannot tell (no defective or no good part).
    """
    chosen = list(sources)
    if not bool(defective.any()) or bool(defective.all()):
        return chosen

    def fused(names: list[str]) -> Tensor:
        return torch.stack([sources[n] for n in names]).max(0).values

    def sensor(name: str) -> str:
        if name == "classifier":
            return "classifier"  # not a sensor: it may go when it only adds noise
        return "image" if name.startswith("image") else "vibration"

    while len(chosen) > 1:
        current = fused(chosen)
        best, best_auc = None, -1.0
        for n in chosen:
            rest = [m for m in chosen if m != n]
            if sensor(n) != "classifier" and sensor(n) not in {sensor(m) for m in rest}:
                continue  # the sensor's last source stays
            ok, auc = _better(fused(rest), current, defective, margin, miss_rate)
            if ok and auc > best_auc:
                best, best_auc = n, auc
        if best is None:
            break
        chosen.remove(best)
    return chosen


def _out_of_fold(
    model: LineModel,
    scored: list[tuple[Tensor, _Scored]],
    labels: Tensor,
    fold: Tensor,
    cfg: AdaptConfig,
    final: LineModel | None = None,
    final_sources: dict[str, Tensor] | None = None,
) -> tuple[OutOfFold, dict[str, Any]]:
    """The out-of-fold scores, and the line model settings chosen on them: the anomaly sources
    (`select_sources`; the classifier is one of them), the fusion that follows ("agree_z" with
    the classifier, "anomaly" without it) and the classifier's standardization.

    `model` is a fold's, done with: its settings serve as scratch to score the classifier and
    the fusion. With `final` (the model taught on every part), the memories' out-of-fold
    scores are in its units (`_on_final_scale`), as the threshold set on them will be used;
    `final_sources` (`_final_sources`) replaces the folds' anomaly-source scores wherever it
    has one: the classifier is then the only source a fold model scores.
    """
    n = labels.numel()
    logits = torch.zeros(n, scored[0][1].logits.shape[1])
    names = list(scored[0][1].sources)
    sources = {name: torch.zeros(n) for name in names}
    final_stats = _memory_stats(final) if final is not None else {}
    for held, part in scored:
        logits[held] = part.logits
        for name in names:
            z = part.sources[name]
            if name in part.memory_stats:
                z = _on_final_scale(z, part.memory_stats[name], final_stats.get(name))
            sources[name][held] = z
    for name, score in (final_sources or {}).items():
        if name in sources:
            sources[name] = torch.where(score.isnan(), sources[name], score)
    defective = labels > 0
    settings = model.settings
    has_classes = logits.shape[1] > 1
    if has_classes and cfg.select_fusion:
        # the classifier as one more source, standardized by the good parts' out-of-fold
        # log-odds (the same unit as the anomaly sources: spreads above a typical good part)
        log_odds = torch.logsumexp(logits[:, 1:], dim=-1) - logits[:, 0]
        good = log_odds[~defective] if bool((~defective).any()) else log_odds
        settings.classifier_center = float(good.median())
        settings.classifier_scale = float(robust_spread(good))
        sources["classifier"] = model.classifier_z(logits)
    chosen = list(sources)
    if cfg.select_sources and chosen:
        chosen = select_sources(sources, defective, cfg.source_margin, cfg.target_miss_rate)
    anomaly_names = [c for c in chosen if c != "classifier"]
    anomaly = (
        torch.stack([sources[c] for c in anomaly_names]).max(0).values
        if anomaly_names
        else torch.full((n,), ABSENT_SCORE)
    )
    # agree_z (or max_z) when the classifier helps, else the anomaly score alone; noisy_or
    # only on request (select_fusion False): its vote adds the classifier's doubt about every
    # good part. The sources were chosen on their largest score (select_sources) either way.
    fusion = "noisy_or"
    if cfg.select_fusion:
        fusion = cfg.classifier_fusion if "classifier" in chosen else "anomaly"
    settings.fusion = fusion
    score, class_probs = model.fuse(logits, anomaly)
    predicted = class_probs.argmax(-1) if class_probs.shape[1] else torch.full((n,), -1)
    choices = {
        "anomaly_sources": anomaly_names,
        "fusion": fusion,
        "classifier_center": settings.classifier_center,
        "classifier_scale": settings.classifier_scale,
    }
    return OutOfFold(score, anomaly, predicted, fold, dict(sources)), choices


def passes_needed(n: int, cfg: AdaptConfig) -> int:
    """Part-passes the progress bar counts: frozen passes, training passes, out-of-fold scoring."""
    trains = 0 if cfg.method == "linear" else cfg.epochs
    folds = cfg.folds if cfg.folds >= 2 else 0
    frozen = n
    train_parts = n + (n * (folds - 1) if folds else 0)
    scoring = n if folds and cfg.method != "linear" else 0
    return frozen + trains * train_parts + scoring


def adapt_line(
    backbone: InspectBackbone,
    data: AdaptData,
    cfg: AdaptConfig | None = None,
    show_progress: bool = False,
) -> AdaptResult:
    """Teach a line model on `data`, with out-of-fold scores when `cfg.folds >= 2`."""
    from tqdm import tqdm

    cfg = cfg or AdaptConfig()
    t0 = time.perf_counter()
    backbone.eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    n = len(data)
    bar = tqdm(
        total=passes_needed(n, cfg),
        unit="part",
        desc=f"adapt ({cfg.method})",
        disable=not show_progress,
    )
    tick: Callable[[int], None] = bar.update
    probe = LineModel(backbone, _settings(backbone, data, cfg)).eval()
    image = data.inputs.image
    if image is not None and tuple(image.shape[-2:]) != (probe.input_size, probe.input_size):
        msg = (
            f"the parts' frames are {tuple(image.shape[-2:])} px but the line model takes "
            f"{probe.input_size} px ({backbone.config.image_size} px x image_scale "
            f"{cfg.image_scale})"
        )
        raise ValueError(msg)
    if probe.prompt is not None:
        probe.prompt.data.copy_(_initial_prompt(backbone, cfg))
    frozen = _frozen_pass(probe, data.inputs, tick)
    # The head's warm start uses the prompt-free features for every method (with read-out
    # prompts, the same pass also gives the initial prompts' read-out): the initial prompts are
    # small, so the features they give differ little, and a second pass would cost as much as a
    # training epoch.
    start_pooled = frozen.pooled
    oof = None
    choices: dict[str, Any] = {}
    if cfg.folds >= 2:
        k = min(cfg.folds, n)
        fold = stratified_folds(data.labels, k, cfg.seed)
        scored: list[tuple[Tensor, _Scored]] = []
        for f in range(k):
            held = torch.nonzero(fold == f).squeeze(1)
            train = torch.nonzero(fold != f).squeeze(1)
            if held.numel() == 0:
                continue
            model_f, _ = _fit_once(backbone, data, frozen, start_pooled, train, cfg, tick)
            scored.append((held, _score(model_f, data, frozen, held)))
            if cfg.method != "linear":
                tick(held.numel())
    model, peft_model = _fit_once(backbone, data, frozen, start_pooled, torch.arange(n), cfg, tick)
    if cfg.folds >= 2:
        oof, choices = _out_of_fold(
            model_f,
            scored,
            data.labels,
            fold,
            cfg,
            final=model,
            final_sources=_final_sources(model, frozen, data),
        )
    for name, value in choices.items():
        setattr(model.settings, name, value)
    bar.close()
    return AdaptResult(model.eval(), oof, time.perf_counter() - t0, peft_model)
