"""The backbone's configuration and the registry of named sizes.

`BackboneConfig` is a `transformers.PretrainedConfig`, so the backbone saves and loads like any
Hugging Face model and peft reads `hidden_size`, `num_hidden_layers`, `num_attention_heads` and
`vocab_size` from it. `vocab_size` is 0: the model has no word embeddings, and peft's prompt
tuning then learns its virtual tokens from scratch and passes them as `inputs_embeds`.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

# 2 CPU cores and Jetson: 128 px image, 16x16 patches of 8 px, 4 blocks of width 128.
_TINY: dict[str, Any] = {
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "dense_intermediate_size": 384,
    "moe_intermediate_size": 48,
    "feature_layers": [1, 3],
}

# Named sizes: only the fields that differ from the defaults of `BackboneConfig`.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": _TINY,
    # `tiny` on a 4x coarser token grid: 8x8 patches of 16 px (the 8 px stem, then a 2x2
    # merge), 64 image tokens instead of 256, for CPUs where `tiny` is too slow. Its blocks
    # start from `tiny`'s (`inspect-app pretrain --config tiny16 --init-from ...`).
    "tiny16": {**_TINY, "patch_size": 16},
    # `tiny` whose image tokens are merged 2x2 after its second block: the first two blocks
    # (and the patch memory's first scale) see 8 px patches, the last two 16 px ones, and the
    # last blocks' change is added back onto the fine tokens (`InspectBackbone`). Starts from
    # `tiny`'s weights (`inspect-app pretrain --config tinym --init-from ...`).
    "tinym": {**_TINY, "merge_after": 1},
    # A workstation GPU: same token grid, wider and deeper.
    "small": {
        "hidden_size": 256,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
        "dense_intermediate_size": 1024,
        "moe_intermediate_size": 192,
        "feature_layers": [3, 7],
    },
}


class BackboneConfig(PretrainedConfig):
    """Sizes of the multimodal backbone: tokenizers, blocks, mixture of experts, prompt room."""

    model_type = "inspect-backbone"

    def __init__(
        self,
        *,
        size_name: str = "custom",
        # image tokens: a conv stem of stride `patch_size` over a square `image_size` frame
        image_size: int = 128,
        patch_size: int = 8,
        # spectrum tokens: patches of `spectrum_patch` bins of the (2, spectrum_bins) spectrum
        spectrum_bins: int = 128,
        spectrum_patch: int = 8,
        # transformer
        hidden_size: int = 128,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        dense_intermediate_size: int = 384,  # the first block's dense feed-forward
        # DeepSeekMoE feed-forward on every block after the first
        n_routed_experts: int = 8,
        n_activated_experts: int = 2,
        n_shared_experts: int = 1,
        moe_intermediate_size: int = 96,  # per expert: fine-grained, a fraction of the dense one
        route_scale: float = 1.0,
        bias_update_rate: float = 5e-3,  # routing-bias step per update (aux-loss-free balancing)
        static_moe: bool = False,  # True: every expert on every token, top-k by mask (export)
        # prompt tokens of a line, passed as inputs_embeds
        max_prompt_tokens: int = 16,
        # blocks whose image tokens make the multi-scale patch features (0-based)
        feature_layers: list[int] | None = None,
        # the block after which the image tokens are merged 2x2 for the blocks that follow
        # (None: every block on the stem's grid)
        merge_after: int | None = None,
        norm_eps: float = 1e-6,
        initializer_range: float = 0.02,
        vocab_size: int = 0,
        **kwargs: Any,
    ) -> None:
        self.size_name = size_name
        self.image_size = image_size
        self.patch_size = patch_size
        self.spectrum_bins = spectrum_bins
        self.spectrum_patch = spectrum_patch
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.dense_intermediate_size = dense_intermediate_size
        self.n_routed_experts = n_routed_experts
        self.n_activated_experts = n_activated_experts
        self.n_shared_experts = n_shared_experts
        self.moe_intermediate_size = moe_intermediate_size
        self.route_scale = route_scale
        self.bias_update_rate = bias_update_rate
        self.static_moe = static_moe
        self.max_prompt_tokens = max_prompt_tokens
        self.feature_layers = (
            list(feature_layers)
            if feature_layers is not None
            else [max(num_hidden_layers // 2 - 1, 0), num_hidden_layers - 1]
        )
        self.merge_after = merge_after
        self.norm_eps = norm_eps
        self.initializer_range = initializer_range
        self.vocab_size = vocab_size
        super().__init__(**kwargs)
        self.validate_sizes()

    def validate_sizes(self) -> None:
        """Raise ValueError naming the first size that cannot work."""
        checks = [
            (self.image_size % self.patch_size == 0, "image_size must be a multiple of patch_size"),
            (self.patch_size in (4, 8, 16), "patch_size must be 4, 8 or 16 (the conv stem)"),
            (
                self.spectrum_bins % self.spectrum_patch == 0,
                "spectrum_bins must be a multiple of spectrum_patch",
            ),
            (
                self.hidden_size % self.num_attention_heads == 0,
                "hidden_size must be a multiple of num_attention_heads",
            ),
            (
                0 < self.n_activated_experts <= self.n_routed_experts,
                "n_activated_experts must be in 1..n_routed_experts",
            ),
            (
                all(0 <= i < self.num_hidden_layers for i in self.feature_layers),
                "feature_layers must be block indices in 0..num_hidden_layers-1",
            ),
            (self.num_hidden_layers >= 1, "num_hidden_layers must be at least 1"),
            (
                self.merge_after is None or 0 <= self.merge_after < self.num_hidden_layers - 1,
                "merge_after must be a block index in 0..num_hidden_layers-2 (or None)",
            ),
            (
                self.merge_after is None or (self.image_size // self.patch_size) % 2 == 0,
                "merge_after needs an even image token grid",
            ),
        ]
        for ok, rule in checks:
            if not ok:
                msg = f"BackboneConfig: {rule} (got {self.to_diff_dict()})"
                raise ValueError(msg)

    @classmethod
    def named(cls, name: str, **overrides: Any) -> BackboneConfig:
        """The config of a named size in `SIZES` (e.g. "tiny"), with optional field overrides."""
        if name not in SIZES:
            msg = f"unknown backbone size {name!r}; expected one of {sorted(SIZES)}"
            raise ValueError(msg)
        return cls(size_name=name, **{**SIZES[name], **overrides})

    @property
    def grid(self) -> tuple[int, int]:
        """The image token grid (rows, columns)."""
        side = self.image_size // self.patch_size
        return side, side

    @property
    def num_image_tokens(self) -> int:
        rows, cols = self.grid
        return rows * cols

    @property
    def num_spectrum_tokens(self) -> int:
        return self.spectrum_bins // self.spectrum_patch

    @property
    def patch_feature_dim(self) -> int:
        """Width of the multi-scale patch features: one hidden_size per feature layer."""
        return self.hidden_size * len(self.feature_layers)
