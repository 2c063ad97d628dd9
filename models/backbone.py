"""The multimodal backbone: image and spectrum tokens through DeepSeek-style blocks.

Tokens, in order: the line's prompt tokens (P, from `inputs_embeds`), one class token, the image
patch tokens (Ni = rows x cols from a conv stem), the spectrum patch tokens (Ns, patches of the
(2, F) vibration spectrum). Each modality adds its own learned embedding. A modality that is not
given (None) contributes no tokens; in a batch that mixes parts with and without a modality,
`image_present` / `vibration_present` (B,) mask the missing ones out of attention, which keeps
shapes fixed for export.

Read-out prompts (`readout_prompts=True`): the prompt tokens attend to every token, but no
other token attends to them and they are left out of the attention gates' context, so the class,
image and spectrum tokens come out exactly as in the prompt-free pass. One pass then gives both
the untouched pretrained features and the prompts' read of them (models/line_model.py).

Blocks: RMSNorm -> gated attention -> RMSNorm -> feed-forward (dense on the first block,
DeepSeekMoE after). The image tokens of `config.feature_layers` make the multi-scale patch
features for the good-part memory.

Merged image tokens (`config.merge_after`, the `tinym` size): after that block the image tokens
are merged 2x2 (`TokenMerge`) and the blocks that follow run on a quarter of them; each coarse
token's change in those blocks is then added back onto the four fine tokens it came from, so
the image tokens and patch features still come out on the stem's grid. The first blocks keep
the fine detail; the later ones, a quarter of the work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from models.attention import GatedAttention, RMSNorm
from models.config import BackboneConfig
from models.heads import DefectMapHead
from models.moe import MLP, MoE
from models.outputs import BackboneOutput


class ImagePatchEmbed(nn.Module):
    """Conv stem of stride `patch_size` (stride-2 convs): (B, 3, S, S) -> (B, Ni, D).

    Patches of 4 or 8 px: 3x3 convs with GELU between, the last one 2x2 (8 px: widths 3, D/4,
    D/2, D). Patches of 16 px: the 8 px stem, then a linear 2x2 merge of its tokens (D -> D, no
    GELU before it), so a 16 px backbone can start from an 8 px one exactly: the merge set to
    the mean of the four tokens (`coarsen_patch_state`) gives their average.
    """

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        n_down = patch_size.bit_length() - 1  # 8 -> 3 stride-2 stages
        n_conv = min(n_down, 3)  # the stem proper; beyond it, linear merges
        widths = [3] + [dim // 2 ** (n_conv - 1 - i) for i in range(n_conv)]  # 3, D/4, D/2, D
        layers: list[nn.Module] = []
        for i in range(n_conv):
            last = i == n_conv - 1
            layers.append(
                nn.Conv2d(
                    widths[i],
                    widths[i + 1],
                    kernel_size=2 if last else 3,
                    stride=2,
                    padding=0 if last else 1,
                )
            )
            if not last:
                layers.append(nn.GELU())
        layers.extend(nn.Conv2d(dim, dim, kernel_size=2, stride=2) for _ in range(n_down - n_conv))
        self.stem = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem(image)  # (B, D, h, w)
        return x.flatten(2).transpose(1, 2)  # (B, h*w, D)


class SpectrumPatchEmbed(nn.Module):
    """Non-overlapping patches of the 2-channel spectrum: (B, 2, F) -> (B, F/p, D)."""

    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, dim, kernel_size=patch, stride=patch)

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        return self.conv(spectrum).transpose(1, 2)  # (B, Ns, D)


class Block(nn.Module):
    """Pre-norm transformer block: gated attention, then a dense or mixture-of-experts FFN."""

    def __init__(self, layer_id: int, config: BackboneConfig) -> None:
        super().__init__()
        dim = config.hidden_size
        self.attn_norm = RMSNorm(dim, config.norm_eps)
        self.attn = GatedAttention(dim, config.num_attention_heads)
        self.ffn_norm = RMSNorm(dim, config.norm_eps)
        self.ffn: MLP | MoE
        if layer_id == 0:
            self.ffn = MLP(dim, config.dense_intermediate_size)
        else:
            self.ffn = MoE(
                dim,
                config.moe_intermediate_size,
                n_routed=config.n_routed_experts,
                topk=config.n_activated_experts,
                n_shared=config.n_shared_experts,
                route_scale=config.route_scale,
                static=config.static_moe,
            )

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor | None, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), valid, attn_mask)
        h = self.ffn_norm(x)
        return x + (self.ffn(h, valid) if isinstance(self.ffn, MoE) else self.ffn(h))


class TokenMerge(nn.Module):
    """Image tokens merged 2x2 between blocks: (B, h*w, D) -> (B, h*w/4, D), a linear map of
    the four tokens side by side; `spread` gives each coarse token back to its four.

    Starts as the mean of the four (`mean_weights`, set by `_init_weights`), so a backbone
    taught without the merge is its starting point (`merge_state`).
    """

    def __init__(self, dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.grid = grid
        weight, bias = self.mean_weights(dim)
        self.weight = nn.Parameter(weight)  # (D, 4D): the four tokens in row-major 2x2 order
        self.bias = nn.Parameter(bias)

    @staticmethod
    def mean_weights(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias that make each merged token the mean of its four."""
        return torch.eye(dim).repeat(1, 4) / 4, torch.zeros(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (h, w), (B, _, D) = self.grid, x.shape
        x = x.reshape(B, h // 2, 2, w // 2, 2, D).permute(0, 1, 3, 2, 4, 5)  # 2x2 blocks
        return F.linear(x.reshape(B, (h // 2) * (w // 2), 4 * D), self.weight, self.bias)

    def spread(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h*w/4, D) -> (B, h*w, D): each coarse token on the four fine ones it covers."""
        (h, w), (B, _, D) = self.grid, x.shape
        x = x.reshape(B, h // 2, 1, w // 2, 1, D).expand(B, h // 2, 2, w // 2, 2, D)
        return x.reshape(B, h * w, D)


def _neighborhood_features(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """RMS-normalized tokens (B, Ni, D) averaged over each 3x3 patch neighborhood."""
    rows, cols = grid
    B, _, D = tokens.shape
    t = tokens * torch.rsqrt(tokens.pow(2).mean(-1, keepdim=True) + 1e-6)
    t = t.transpose(1, 2).reshape(B, D, rows, cols)  # (B, D, h, w)
    t = F.avg_pool2d(t, 3, stride=1, padding=1, count_include_pad=False)  # (B, D, h, w)
    return t.flatten(2).transpose(1, 2)  # (B, Ni, D)


def readout_masks(
    valid: torch.Tensor | None, n_prompt: int, batch: int, n_tokens: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks that make the first `n_prompt` tokens read-outs.

    Returns the context validity (B, N): `valid` (all True if None) without the prompt tokens,
    for the gates' context and the experts' load; and the attention mask (B, 1, N, N): a prompt
    query may attend to every valid key, any other query only to valid non-prompt keys.
    """
    is_prompt = torch.arange(n_tokens, device=device) < n_prompt  # (N,)
    key_ok = (
        torch.ones(batch, n_tokens, dtype=torch.bool, device=device) if valid is None else valid
    )
    allowed = is_prompt.unsqueeze(1) | ~is_prompt.unsqueeze(0)  # (N queries, N keys)
    attn_mask = key_ok[:, None, None, :] & allowed[None, None]  # (B, 1, N, N)
    return key_ok & ~is_prompt.unsqueeze(0), attn_mask


class MultimodalEmbedding(nn.Module):
    """Prompt, class, image and spectrum tokens with position and modality embeddings."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.hidden_size
        self.image_patches = ImagePatchEmbed(config.patch_size, dim)
        self.spectrum_patches = SpectrumPatchEmbed(config.spectrum_patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.image_pos = nn.Parameter(torch.zeros(1, config.num_image_tokens, dim))
        self.spectrum_pos = nn.Parameter(torch.zeros(1, config.num_spectrum_tokens, dim))
        self.modality = nn.Parameter(torch.zeros(3, dim))  # prompt, image, vibration
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))  # masked-patch pretraining

    def forward(
        self,
        image: torch.Tensor | None,
        spectrum: torch.Tensor | None,
        prompts: torch.Tensor | None,
        image_present: torch.Tensor | None,
        vibration_present: torch.Tensor | None,
        image_token_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int, int]]:
        """Token sequence (B, P+1+Ni+Ns, D), key validity (B, N) or None, and (P, Ni, Ns)."""
        given = [t for t in (image, spectrum, prompts) if t is not None]
        if not given:
            msg = "InspectBackbone needs at least one of image, spectrum or inputs_embeds"
            raise ValueError(msg)
        B, ref = given[0].shape[0], given[0]
        cfg = self.config
        parts: list[torch.Tensor] = []
        valid: list[torch.Tensor] = []
        ones = torch.ones(B, 1, dtype=torch.bool, device=ref.device)
        if prompts is not None:
            if prompts.shape[1] > cfg.max_prompt_tokens or prompts.shape[2] != cfg.hidden_size:
                msg = (
                    f"inputs_embeds must be (B, P<={cfg.max_prompt_tokens}, "
                    f"{cfg.hidden_size}), got {tuple(prompts.shape)}"
                )
                raise ValueError(msg)
            parts.append(prompts + self.modality[0])
            valid.append(ones.expand(B, prompts.shape[1]))
        parts.append(self.cls_token.expand(B, -1, -1))
        valid.append(ones)
        n_img = n_spec = 0
        if image is not None:
            expected = (3, cfg.image_size, cfg.image_size)
            if tuple(image.shape[1:]) != expected:
                msg = f"image must be (B, {expected}), got {tuple(image.shape)}"
                raise ValueError(msg)
            x = self.image_patches(image)  # (B, Ni, D)
            if image_token_mask is not None:  # (B, Ni) True = hide this patch
                x = torch.where(image_token_mask.unsqueeze(-1), self.mask_token.to(x.dtype), x)
            parts.append(x + self.image_pos + self.modality[1])
            n_img = x.shape[1]
            present = ones if image_present is None else image_present.view(B, 1)
            valid.append(present.expand(B, n_img))
        if spectrum is not None:
            if tuple(spectrum.shape[1:]) != (2, cfg.spectrum_bins):
                msg = f"spectrum must be (B, 2, {cfg.spectrum_bins}), got {tuple(spectrum.shape)}"
                raise ValueError(msg)
            s = self.spectrum_patches(spectrum)  # (B, Ns, D)
            parts.append(s + self.spectrum_pos + self.modality[2])
            n_spec = s.shape[1]
            present = ones if vibration_present is None else vibration_present.view(B, 1)
            valid.append(present.expand(B, n_spec))
        x = torch.cat(parts, dim=1)  # (B, P+1+Ni+Ns, D)
        masks_given = image_present is not None or vibration_present is not None
        key_valid = torch.cat(valid, dim=1) if masks_given else None  # (B, N)
        n_prompt = 0 if prompts is None else prompts.shape[1]
        return x, key_valid, (n_prompt, n_img, n_spec)


class InspectBackbone(PreTrainedModel):
    """Camera + vibration transformer; `forward_features` gives tokens, `forward` adds the map."""

    config_class = BackboneConfig
    config: BackboneConfig
    base_model_prefix = "backbone"
    main_input_name = "image"
    _supports_sdpa = True

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__(config)
        dim = config.hidden_size
        self.embed = MultimodalEmbedding(config)
        self.layers = nn.ModuleList(Block(i, config) for i in range(config.num_hidden_layers))
        self.merge = TokenMerge(dim, config.grid) if config.merge_after is not None else None
        self.norm = RMSNorm(dim, config.norm_eps)
        self.defect_map = DefectMapHead(dim)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)
        elif isinstance(module, MultimodalEmbedding):
            for p in (module.cls_token, module.image_pos, module.spectrum_pos, module.modality):
                nn.init.trunc_normal_(p, std=std)
            nn.init.zeros_(module.mask_token)
        elif isinstance(module, TokenMerge):
            weight, bias = module.mean_weights(module.weight.shape[0])
            with torch.no_grad():
                module.weight.copy_(weight)
                module.bias.copy_(bias)

    # -- switches ---------------------------------------------------------------------------

    def set_static_moe(self, static: bool) -> None:
        """Sparse experts (training) or every expert with a top-k mask (export); same output."""
        self.config.static_moe = static
        for module in self.modules():
            if isinstance(module, MoE):
                module.static = static

    def moe_gates(self) -> list[Any]:
        """The routing gates of every mixture-of-experts block, first to last."""
        return [m.ffn.gate for m in self.layers if isinstance(m.ffn, MoE)]

    def update_routing_bias(self, rate: float | None = None) -> None:
        """Apply the aux-loss-free balancing step to every gate from the loads seen since last."""
        step = self.config.bias_update_rate if rate is None else rate
        for gate in self.moe_gates():
            gate.update_bias(step)

    # -- forward ----------------------------------------------------------------------------

    def forward_features(
        self,
        image: torch.Tensor | None = None,
        spectrum: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        image_present: torch.Tensor | None = None,
        vibration_present: torch.Tensor | None = None,
        image_token_mask: torch.Tensor | None = None,
        readout_prompts: bool = False,
    ) -> BackboneOutput:
        """Run the blocks; returns tokens and multi-scale patch features (no head).

        `readout_prompts`: the prompt tokens only read (see the module docstring); every other
        output, `patch_features` included, is then the prompt-free pass's.
        """
        x, key_valid, (n_prompt, n_img, _) = self.embed(
            image, spectrum, inputs_embeds, image_present, vibration_present, image_token_mask
        )
        valid, attn_mask = key_valid, None
        if readout_prompts and n_prompt:
            valid, attn_mask = readout_masks(key_valid, n_prompt, x.shape[0], x.shape[1], x.device)
        img = slice(n_prompt + 1, n_prompt + 1 + n_img)
        grid = self.config.grid
        merged: tuple[torch.Tensor, torch.Tensor] | None = None  # fine tokens, merged at start
        scales: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x = layer(x, valid, attn_mask)
            if self.merge is not None and i == self.config.merge_after and n_img:
                fine = x[:, img]
                merged = (fine, self.merge(fine))
                x = torch.cat([x[:, : img.start], merged[1], x[:, img.stop :]], dim=1)
                coarse = slice(img.start, img.start + merged[1].shape[1])
                if key_valid is not None:  # a part's image tokens are all valid or all not
                    key_valid = torch.cat(
                        [key_valid[:, : coarse.stop], key_valid[:, img.stop :]], dim=1
                    )
                img, valid = coarse, key_valid
                if readout_prompts and n_prompt:
                    valid, attn_mask = readout_masks(
                        key_valid, n_prompt, x.shape[0], x.shape[1], x.device
                    )
            if i in self.config.feature_layers and n_img:
                scales.append(_neighborhood_features(self._fine(x[:, img], merged), grid))
        image_tokens = self.norm(self._fine(x[:, img], merged))
        x = self.norm(x)
        B = x.shape[0]
        patch_features = (
            torch.cat(scales, dim=-1)  # (B, Ni, D * len(feature_layers))
            if scales
            else x.new_zeros(B, 0, self.config.patch_feature_dim)
        )
        return BackboneOutput(
            cls=x[:, n_prompt],
            image_tokens=image_tokens,
            spectrum_tokens=x[:, img.stop :],
            prompt_tokens=x[:, :n_prompt],
            grid=grid,
            patch_features=patch_features,
        )

    def _fine(
        self, tokens: torch.Tensor, merged: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """Image tokens on the stem's grid: as they are, or, once merged, the fine tokens at the
        merge plus what the later blocks changed in the coarse token over each of them."""
        if merged is None or self.merge is None:
            return tokens
        fine, start = merged
        return fine + self.merge.spread(tokens - start)

    def forward_head(self, out: BackboneOutput) -> BackboneOutput:
        """Fill the pretrained per-patch defect logits (B, Ni)."""
        out.defect_logits = self.defect_map(out.image_tokens)
        return out

    def forward(
        self,
        image: torch.Tensor | None = None,
        spectrum: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        image_present: torch.Tensor | None = None,
        vibration_present: torch.Tensor | None = None,
        image_token_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        readout_prompts: bool = False,
    ) -> BackboneOutput:
        """Tokens of a batch. image (B,3,S,S), spectrum (B,2,F), inputs_embeds (B,P,D) prompts.

        `readout_prompts`: the prompts only read the other tokens (see `forward_features`).

        `input_ids`, `attention_mask`, `output_attentions`, `output_hidden_states` and
        `return_dict` are accepted for peft's calling convention: there is no vocabulary, so
        `input_ids` must be None; prompts are always attended to; the rest must be left unset.
        """
        if input_ids is not None:
            msg = "InspectBackbone has no vocabulary (vocab_size=0): pass prompts as inputs_embeds"
            raise ValueError(msg)
        if attention_mask is not None and not bool(attention_mask.all()):
            msg = "attention_mask must be all ones: mask modalities with image/vibration_present"
            raise ValueError(msg)
        if output_attentions or output_hidden_states or return_dict is False:
            msg = "InspectBackbone returns a BackboneOutput; attentions/hidden states unsupported"
            raise ValueError(msg)
        out = self.forward_features(
            image,
            spectrum,
            inputs_embeds,
            image_present,
            vibration_present,
            image_token_mask,
            readout_prompts,
        )
        return self.forward_head(out)


def coarsen_patch_state(
    state: dict[str, torch.Tensor], backbone: InspectBackbone
) -> tuple[dict[str, torch.Tensor], bool]:
    """A copy of the state dict of a backbone with 8 px image patches, fitted to `backbone`'s
    16 px ones; and whether anything changed. Any other state (`backbone`'s own grid, another
    width or image size) comes back as is, for the loader to accept or refuse.

    The new stem's 2x2 merge is set to the mean of the four tokens and the image position
    embeddings are averaged 2x2, so each new image token is exactly the mean of the four old
    tokens it covers (their modality embedding is shared). The blocks see a coarser grid than
    they learned on: a starting point for pretraining, not a finished model.
    """
    key = "embed.image_pos"
    own = backbone.embed.image_pos
    pos = state.get(key)
    if pos is None or pos.shape == own.shape:
        return dict(state), False
    rows, cols = backbone.config.grid
    dim = own.shape[2]
    stem = backbone.embed.image_patches.stem
    merge = len(stem) - 1  # the stem's last layer: the 2x2 merge a 16 px stem adds
    prefix = f"embed.image_patches.stem.{merge}."
    fine = tuple(pos.shape) == (1, 4 * rows * cols, dim) and prefix + "weight" not in state
    if backbone.config.patch_size != 16 or not fine:
        return dict(state), False
    out = dict(state)
    grid = pos[0].T.reshape(dim, 2 * rows, 2 * cols)
    out[key] = F.avg_pool2d(grid, 2).reshape(dim, rows * cols).T.unsqueeze(0).contiguous()
    weight = torch.zeros(dim, dim, 2, 2, dtype=pos.dtype, device=pos.device)
    weight[torch.arange(dim), torch.arange(dim)] = 0.25
    out[prefix + "weight"] = weight
    out[prefix + "bias"] = torch.zeros(dim, dtype=pos.dtype, device=pos.device)
    return out, True


def merge_state(
    state: dict[str, torch.Tensor], backbone: InspectBackbone
) -> tuple[dict[str, torch.Tensor], bool]:
    """A copy of the state dict of a backbone without merged image tokens, fitted to
    `backbone`, which merges them (`config.merge_after`); and whether anything changed.

    The merge is set to the mean of the four tokens: the blocks after it then see the average
    of what they saw before, a starting point for pretraining, not a finished model.
    """
    if backbone.merge is None or "merge.weight" in state:
        return dict(state), False
    ref = state.get("embed.image_pos")
    if ref is None or ref.shape != backbone.embed.image_pos.shape:
        return dict(state), False  # another grid: for the loader to refuse
    weight, bias = TokenMerge.mean_weights(backbone.config.hidden_size)
    out = dict(state)
    out["merge.weight"] = weight.to(ref)
    out["merge.bias"] = bias.to(ref)
    return out, True


def all_shipped_checkpoints() -> list[str]:
    """Names of every checkpoint shipped under models/checkpoints/, sorted."""
    root = resources.files("models") / "checkpoints"
    return sorted(p.name for p in root.iterdir() if p.joinpath("config.json").is_file())


def shipped_checkpoints(size: str) -> list[str]:
    """Names of the shipped checkpoints of `size`: the current one (`size`) first, then the
    earlier ones kept under `size-<stage>` so that lines taught on them still load."""
    names = all_shipped_checkpoints()
    earlier = [n for n in names if n.startswith(f"{size}-")]
    return ([size] if size in names else []) + earlier


def load_pretrained(size: str = "tiny") -> InspectBackbone:
    """The backbone shipped with the package under models/checkpoints/<size>/ (eval mode);
    `size` may also name an earlier checkpoint kept beside it (`shipped_checkpoints`)."""
    folder = resources.files("models") / "checkpoints" / size
    if not folder.joinpath("config.json").is_file():
        msg = f"no shipped checkpoint for backbone size {size!r} (looked in {folder})"
        raise FileNotFoundError(msg)
    with resources.as_file(folder) as path, _quiet_loading():
        model = InspectBackbone.from_pretrained(path, use_safetensors=True)
    model.eval()
    return model


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No "Loading weights" bar from transformers while a shipped checkpoint loads: it takes
    milliseconds, and the bar would land in every command's output and a service's journal."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
