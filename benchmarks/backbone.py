"""Backbone cost: parameters, FLOPs per part, batch-1 latency (torch eager, onnxruntime).

Compares with torchvision ResNet-18 and MobileNetV3-Small (weights=None) at the same image size.
FLOPs are counted by `torch.utils.flop_counter` (2 per multiply-add; matmuls, convolutions and
attention), for the sparse (training) MoE and for the static export form that runs every
expert on every token. Latency is the median of repeated batch-1 calls after warm-up.

Run:  python -m benchmarks.backbone [--size tiny [tinym ...]] [--threads 2] [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from models.backbone import InspectBackbone
from models.config import BackboneConfig
from models.moe import MoE


class BackboneGraph(nn.Module):
    """The backbone as a plain graph: (image, spectrum) -> (cls, patch features, defect logits)."""

    def __init__(self, backbone: InspectBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, image: torch.Tensor, spectrum: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.backbone(image=image, spectrum=spectrum)
        assert out.defect_logits is not None
        return out.cls, out.patch_features, out.defect_logits


def count_flops(model: nn.Module, *inputs: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return int(counter.get_total_flops())


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def onnx_session(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], path: Path, threads: int
) -> ort.InferenceSession:
    torch.onnx.export(
        model,
        inputs,
        str(path),
        input_names=names,
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def params_per_token(backbone: InspectBackbone) -> tuple[int, int]:
    """Total parameters, and those one token passes through (top-k of the routed experts)."""
    total = sum(p.numel() for p in backbone.parameters())
    cfg = backbone.config
    idle = 0
    for module in backbone.modules():
        if isinstance(module, MoE):
            per_expert = sum(p.numel() for p in module.experts[0].parameters())
            idle += per_expert * (cfg.n_routed_experts - cfg.n_activated_experts)
    return total, total - idle


def backbone_rows(
    size: str, threads: int, repeat: int, tmp: Path
) -> tuple[str, float, float, float]:
    """Describe backbone `size` (parameters, FLOPs, onnxruntime agreement) and time it: its
    table row (name, GFLOPs of the export form, eager ms, onnxruntime ms)."""
    torch.manual_seed(0)
    cfg = BackboneConfig.named(size)
    S = cfg.image_size
    backbone = InspectBackbone(cfg).eval()
    image = torch.randn(1, 3, S, S)
    spectrum = torch.randn(1, 2, cfg.spectrum_bins)
    graph = BackboneGraph(backbone).eval()

    total, active = params_per_token(backbone)
    merged = (
        f", image tokens merged 2x2 after block {cfg.merge_after + 1}"
        if cfg.merge_after is not None
        else ""
    )
    print(
        f"backbone {size}: image {S} px, grid {cfg.grid}, {cfg.num_spectrum_tokens} "
        f"spectrum tokens, {cfg.num_hidden_layers} blocks x {cfg.hidden_size}, "
        f"{cfg.n_routed_experts} experts top-{cfg.n_activated_experts} + shared{merged}"
    )
    print(f"parameters: total {total / 1e6:.2f} M, active per token {active / 1e6:.2f} M")
    sparse = count_flops(graph, image, spectrum)
    flops_image = count_flops(lambda x: backbone(image=x), image)
    flops_vib = count_flops(lambda x: backbone(spectrum=x), spectrum)
    backbone.set_static_moe(True)
    static = count_flops(graph, image, spectrum)
    print(
        f"GFLOPs per part (image + vibration): sparse MoE {sparse / 1e9:.3f}, static export "
        f"form {static / 1e9:.3f}; image only {flops_image / 1e9:.3f}, vibration only "
        f"{flops_vib / 1e9:.3f} (sparse)"
    )
    with torch.no_grad():
        backbone.set_static_moe(False)
        eager = median_ms(lambda: graph(image, spectrum), repeat)
        backbone.set_static_moe(True)
        sess = onnx_session(
            graph, (image, spectrum), ["image", "spectrum"], tmp / f"{size}.onnx", threads
        )
        feeds = {"image": image.numpy(), "spectrum": spectrum.numpy()}
        ort_cls = sess.run(None, feeds)[0]
        err = float(np.abs(ort_cls - graph(image, spectrum)[0].numpy()).max())
        print(f"onnxruntime vs torch (static form), max |diff| of cls: {err:.2e}")
        ort_ms = median_ms(lambda: sess.run(None, feeds), repeat)
    return f"InspectBackbone {size}", static / 1e9, eager, ort_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--size",
        nargs="+",
        default=["tiny"],
        help="one or more named sizes, timed in the same run (e.g. --size tiny tinym tiny16)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows: list[tuple[str, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.size:
            rows.append(backbone_rows(size, args.threads, args.repeat, Path(tmp)))
        S = BackboneConfig.named(args.size[0]).image_size
        image = torch.randn(1, 3, S, S)
        with torch.no_grad():
            for name, ctor in (
                ("resnet18", torchvision.models.resnet18),
                ("mobilenet_v3_small", torchvision.models.mobilenet_v3_small),
            ):
                net = ctor(weights=None).eval()
                flops = count_flops(net, image)
                t_eager = median_ms(lambda net=net: net(image), args.repeat)
                s = onnx_session(net, (image,), ["image"], Path(tmp) / f"{name}.onnx", args.threads)
                feed = {"image": image.numpy()}
                rows.append(
                    (
                        name,
                        flops / 1e9,
                        t_eager,
                        median_ms(lambda s=s, feed=feed: s.run(None, feed), args.repeat),
                    )
                )
    print(f"batch-1 latency at {S} px, {args.threads} threads, median of {args.repeat}:")
    print(f"{'model':28s} {'GFLOPs':>8s} {'eager ms':>9s} {'onnxruntime ms':>15s}")
    for name, gf, te, to in rows:
        print(f"{name:28s} {gf:8.3f} {te:9.2f} {to:15.2f}")


if __name__ == "__main__":
    main()
