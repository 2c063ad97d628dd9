"""The training loop behind `inspect-app pretrain` (the command's parser is in
`inspect_app/commands/pretrain.py`; this module loads torch, so the command imports it only
when a run starts)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _schedule(step: int, total: int, peak: float, time_fraction: float = 0.0) -> float:
    """Linear warm-up over the first 5 %, then cosine to zero at `total` steps, or earlier when
    `time_fraction` (elapsed / --time-limit) runs ahead of the steps: then the schedule ends
    with the time limit, whatever the machine's speed."""
    step = max(step, int(time_fraction * total))
    warm = max(1, total // 20)
    if step < warm:
        return peak * (step + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def train(args: argparse.Namespace) -> int:
    """Run `inspect-app pretrain` with parsed `args` (see the command's --help)."""
    from inspect_app.pretrain_data import OK, load_sources, synthetic_seeds
    from models.backbone import InspectBackbone
    from models.config import BackboneConfig
    from models.pretraining import PretrainModel, augment_images
    from sensors.spectrum import SpectrumConfig

    if not 0.0 <= args.masked_share <= 1.0:
        print(
            f"inspect-app pretrain: --masked-share {args.masked_share}: must be in 0-1",
            file=sys.stderr,
        )
        return 2
    if "synthetic" in args.data:
        try:  # refused before any work
            synthetic_seeds(args.synthetic_first_seed, args.synthetic_lines)
        except ValueError as exc:
            print(f"inspect-app pretrain: {exc}", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device("cpu")
    if world > 1:
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    main = rank == 0

    config = BackboneConfig.named(args.config, bias_update_rate=args.bias_update_rate)
    spectrum = SpectrumConfig()
    if spectrum.n_bins != config.spectrum_bins:
        msg = f"spectrum has {spectrum.n_bins} bins but backbone {args.config} expects "
        msg += f"{config.spectrum_bins}"
        raise ValueError(msg)
    if world > 1 and rank != 0:
        import torch.distributed as dist

        dist.barrier()  # rank 0 fills the cache first; the others then read it
    data = load_sources(
        args.data,
        args.cache,
        config.image_size,
        spectrum,
        args.synthetic_lines,
        args.parts_per_line,
        args.synthetic_first_seed,
        workers=args.workers,
    )
    if world > 1 and rank == 0:
        import torch.distributed as dist

        dist.barrier()
    classes = [OK, *sorted(set(data.labels) - {OK})]
    label_index = np.array([classes.index(lab) for lab in data.labels])
    train_idx = np.flatnonzero(~data.held_out)
    # equal share per source family (synthetic / each real folder), uniform within it
    family = np.array([n.split("-")[0] if n.startswith("synthetic") else n for n in data.sources])
    fam_of = family[train_idx]
    weights = np.zeros(len(train_idx))
    for f in np.unique(fam_of):
        weights[fam_of == f] = 1.0 / (fam_of == f).sum()
    weights /= weights.sum()
    real_image = np.array([not n.startswith("synthetic") for n in data.sources])
    line_parts = _line_groups(data, train_idx) if args.anomaly_weight > 0 else []
    if args.anomaly_weight > 0 and not line_parts:
        print(
            "inspect-app pretrain: --anomaly-weight needs synthetic lines with at least two "
            "good image parts each (more --parts-per-line?)",
            file=sys.stderr,
        )
        return 2

    torch.manual_seed(args.seed)
    backbone = InspectBackbone(config)
    model = PretrainModel(
        backbone,
        n_classes=len(classes),
        anomaly_weight=args.anomaly_weight,
        spread_weight=args.spread_weight,
        patch_class_weight=args.patch_class_weight,
        masked_patch_weight=args.masked_patch_weight,
    ).to(device)
    if args.init_from is not None:
        try:
            note = _init_from(model, args.init_from, classes, device)
        except (ValueError, OSError) as exc:
            print(f"inspect-app pretrain: --init-from {args.init_from}: {exc}", file=sys.stderr)
            return 2
        if note and main:
            print(f"inspect-app pretrain: --init-from {args.init_from}: {note}", file=sys.stderr)
    routers = [p for n, p in model.named_parameters() if n.endswith("gate.weight")]
    others = [p for n, p in model.named_parameters() if not n.endswith("gate.weight")]
    groups: list[dict[str, Any]] = [{"params": others, "lr_scale": 1.0}]
    if routers:
        groups.append({"params": routers, "lr_scale": args.router_lr_scale})
    optimizer = torch.optim.AdamW(groups, lr=args.lr, weight_decay=0.05)
    args.out.mkdir(parents=True, exist_ok=True)
    state_path = args.out / "last.pt"
    start = 0
    if args.resume:
        if not state_path.is_file():
            print(f"inspect-app pretrain: --resume but no {state_path}", file=sys.stderr)
            return 2
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        try:
            optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:
            msg = (
                f"inspect-app pretrain: {state_path} was written with other optimizer groups "
                f"({exc}); start a new run with --init-from {state_path} instead"
            )
            print(msg, file=sys.stderr)
            return 2
        start = int(state["step"])
    trained: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, find_unused_parameters=True)

    rng = np.random.default_rng([args.seed, rank, start])
    gen = torch.Generator(device=device).manual_seed(args.seed * 1000 + rank + start)
    autocast = device.type == "cuda" or args.bf16
    log = (args.out / "log.jsonl").open("a" if args.resume else "w") if main else None
    from tqdm import tqdm

    bar = tqdm(
        range(start, args.steps),
        desc="pretrain",
        unit="step",
        disable=not main,
        initial=start,
        total=args.steps,
    )
    t0 = time.time()
    reached = start
    for step in bar:
        pick = train_idx[rng.choice(len(train_idx), args.batch_size, p=weights)]
        batch = _make_batch(
            data, pick, label_index, real_image, rng, gen, device, augment_images, args.masked_share
        )
        grouped = None
        if line_parts:
            grouped = _make_grouped_batch(
                data, line_parts, args.anomaly_lines, args.anomaly_parts, rng, gen, device
            )
        elapsed = (time.time() - t0) / (60 * args.time_limit) if args.time_limit else 0.0
        for group in optimizer.param_groups:
            group["lr"] = _schedule(step, args.steps, args.lr, elapsed) * group["lr_scale"]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            losses = trained(batch, grouped)
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if world > 1:
            import torch.distributed as dist

            for gate in backbone.moe_gates():
                dist.all_reduce(gate.expert_load)
        loads = torch.stack([g.expert_load.clone() for g in backbone.moe_gates()])
        backbone.update_routing_bias()
        if main and log is not None:
            row = {
                "step": step + 1,
                "loss": losses.total.item(),
                "class": losses.cls.item(),
                "defect_map": losses.defect_map.item(),
                "masked_patch": losses.masked_patch.item(),
                "class_accuracy": losses.class_accuracy,
                **(
                    {
                        "anomaly": losses.anomaly.item(),
                        "anomaly_separation": losses.anomaly_separation,
                    }
                    if losses.anomaly is not None
                    else {}
                ),
                **({"spread": losses.spread.item()} if losses.spread is not None else {}),
                **(
                    {"patch_class": losses.patch_class.item()}
                    if losses.patch_class is not None
                    else {}
                ),
                "lr": optimizer.param_groups[0]["lr"],
                "load_max_over_min": float(
                    (loads.max(1).values / loads.min(1).values.clamp_min(1)).max()
                ),
                "seconds": round(time.time() - t0, 1),
            }
            log.write(json.dumps(row) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['class_accuracy']:.2f}")
        out_of_time = args.time_limit is not None and time.time() - t0 > 60 * args.time_limit
        if world > 1 and args.time_limit is not None:  # every process stops at the same step
            import torch.distributed as dist

            flag = torch.tensor(float(out_of_time), device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            out_of_time = bool(flag.item())
        last = step + 1 == args.steps or out_of_time
        reached = step + 1
        if main and ((step + 1) % args.checkpoint_every == 0 or last):
            tmp = state_path.with_suffix(".tmp")
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": step + 1,
                    "classes": classes,
                },
                tmp,
            )
            tmp.replace(state_path)
        if out_of_time:
            if main:
                print(f"inspect-app pretrain: --time-limit reached at step {reached}")
            break
    if main:
        backbone.save_pretrained(args.out / "backbone", safe_serialization=True)
        recipe = _recipe(args, classes, data, train_idx)
        recipe["step_reached"] = reached
        (args.out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        print(f"backbone written to {args.out / 'backbone'}; recipe in {args.out / 'recipe.json'}")
    if log is not None:
        log.close()
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


def _images_and_masks(
    data: Any, idx: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Parts `idx` as images (B, 3, S, S) in [0, 1] and masks (B, 1, S, S) on `device`."""
    images = torch.from_numpy(data.images[idx]).to(device).permute(0, 3, 1, 2).float() / 255
    masks = torch.from_numpy(data.masks[idx]).to(device).unsqueeze(1).float()
    return images, masks


def _make_batch(
    data: Any,
    pick: np.ndarray,
    label_index: np.ndarray,
    real_image: np.ndarray,
    rng: np.random.Generator,
    gen: torch.Generator,
    device: torch.device,
    augment: Any,
    masked_share: float = 0.2,
) -> Any:
    from models.pretraining import PretrainBatch

    images, masks = _images_and_masks(data, pick, device)
    images, masks = augment(images, masks, gen)
    has_image = data.has_image[pick].copy()
    has_vib = data.has_vibration[pick].copy()
    labels = label_index[pick].copy()
    # modality dropout on parts with both sensors; a label the kept sensor cannot see is dropped
    both = has_image & has_vib
    drop = rng.random(len(pick))
    no_image = both & (drop < 0.25)
    no_vib = both & (drop >= 0.25) & (drop < 0.5)
    has_image &= ~no_image
    has_vib &= ~no_vib
    labels[no_image & ~data.vibration_label_ok[pick]] = -1
    labels[no_vib & ~data.image_label_ok[pick]] = -1
    spectra = torch.from_numpy(data.spectra[pick]).to(device)
    spectra = spectra + 0.1 * torch.randn(spectra.shape, generator=gen, device=device)
    masked = has_image & (rng.random(len(pick)) < np.where(real_image[pick], 0.5, masked_share))
    return PretrainBatch(
        images=images,
        masks=masks,
        has_mask=torch.from_numpy(data.has_mask[pick]).to(device),
        spectra=spectra,
        image_present=torch.from_numpy(has_image).to(device),
        vibration_present=torch.from_numpy(has_vib).to(device),
        labels=torch.from_numpy(labels).long().to(device),
        masked_patches=torch.from_numpy(masked).to(device),
    )


def _line_groups(data: Any, train_idx: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(good, defective) image parts of each synthetic line with at least two good images."""
    by_line: dict[str, list[int]] = {}
    for i in train_idx:
        if data.sources[i].startswith("synthetic") and data.has_image[i] and data.has_mask[i]:
            by_line.setdefault(data.sources[i], []).append(int(i))
    groups = []
    for parts in by_line.values():
        idx = np.array(parts)
        good = data.masks[idx].reshape(len(idx), -1).max(1) == 0
        if good.sum() >= 2:
            groups.append((idx[good], idx[~good]))
    return groups


def _make_grouped_batch(
    data: Any,
    line_parts: list[tuple[np.ndarray, np.ndarray]],
    lines: int,
    parts: int,
    rng: np.random.Generator,
    gen: torch.Generator,
    device: torch.device,
) -> Any:
    """`lines` synthetic lines, up to `parts` image parts each (two good ones first), augmented
    alike within a line (one camera per line)."""
    from models.pretraining import AnomalyBatch, augment_images

    pick, group = [], []
    for g, li in enumerate(rng.choice(len(line_parts), min(lines, len(line_parts)), False)):
        good, bad = line_parts[li]
        good = rng.permutation(good)
        rest = rng.permutation(np.concatenate([good[2:], bad]))
        chosen = np.concatenate([good[:2], rest])[: max(parts, 2)]
        pick.extend(chosen.tolist())
        group.extend([g] * len(chosen))
    idx = np.array(pick)
    images, masks = _images_and_masks(data, idx, device)
    groups = torch.tensor(group, device=device)
    images, masks = augment_images(images, masks, gen, groups)
    return AnomalyBatch(images=images, masks=masks, groups=groups)


def _init_from(model: Any, path: Path, classes: list[str], device: torch.device) -> str:
    """Load `path` (an earlier run's last.pt, or a backbone folder) into `model`; a note."""
    if path.is_dir():
        from safetensors.torch import load_file

        weights = path / "model.safetensors"
        if not weights.is_file():
            msg = "neither a run's last.pt nor a backbone folder with model.safetensors"
            raise ValueError(msg)
        state, note = _narrowed(load_file(str(weights), device=str(device)), model.backbone)
        _load_fitting(model.backbone, state)
        return "a backbone folder: the pretraining heads start fresh" + note
    if not path.is_file():
        msg = "no such file or folder"
        raise ValueError(msg)
    earlier = torch.load(path, map_location=device, weights_only=True)
    state, note = _narrowed(earlier["model"], model.backbone)
    loaded = _load_earlier(model, state, earlier.get("classes"), classes)
    return "; ".join(n for n in (loaded, note.removeprefix("; ")) if n)


def _narrowed(state: dict[str, Any], backbone: Any) -> tuple[dict[str, Any], str]:
    """`state` fitted to the backbone where it was made for a finer or wider one: 8 px image
    patches merged 2x2 for a 16 px backbone (`coarsen_patch_state`) or between the blocks of
    one that merges them (`merge_state`), experts narrowed to the
    backbone's width (a run that moves to smaller experts starts from a wider checkpoint); a
    note saying what changed, or "". A run's last.pt holds the backbone under `backbone.`."""
    from models.backbone import coarsen_patch_state, merge_state
    from models.prune import narrow_expert_state

    prefix = "backbone." if any(k.startswith("backbone.") for k in state) else ""
    own = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    own, coarsened = coarsen_patch_state(own, backbone)
    note = "; image patches merged 2x2 (each token the mean of four)" if coarsened else ""
    own, merged = merge_state(own, backbone)
    if merged:
        after = backbone.config.merge_after + 1  # counted from 1, as people say it
        note += f"; image tokens merged 2x2 after block {after} (each the mean of four)"
    inter = backbone.config.moe_intermediate_size
    key = next((k for k in own if k.endswith("experts.0.w1.weight")), None)
    if key is not None and own[key].shape[0] > inter:
        own, width = narrow_expert_state(own, inter)
        note += f"; experts narrowed from {width} to {inter} hidden units (largest weights kept)"
    if not note:
        return state, ""
    rest = {k: v for k, v in state.items() if not k.startswith(prefix)} if prefix else {}
    return {**rest, **{prefix + k: v for k, v in own.items()}}, note


def _load_fitting(module: Any, state: dict[str, Any], fresh: tuple[str, ...] = ()) -> None:
    """Load `state` into `module`; weights it lacks may only be those starting with `fresh`.
    Anything else that does not fit (names or shapes) is a ValueError saying so."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes differ: another size of backbone
        msg = f"the weights do not fit this backbone ({str(exc).splitlines()[-1].strip()}): "
        msg += "was it made with another --config?"
        raise ValueError(msg) from exc
    missing = [k for k in result.missing_keys if not k.startswith(fresh)]
    unexpected = result.unexpected_keys
    if missing or unexpected:
        msg = f"the weights do not fit this backbone (missing {missing[:3]}, unexpected "
        msg += f"{unexpected[:3]}): was it made with another --config?"
        raise ValueError(msg)


def _load_earlier(
    model: Any, state: dict[str, Any], earlier: list[str] | None, classes: list[str]
) -> str:
    """Load an earlier run's weights into `model`; the class head row by row by class name.

    The backbone and the other heads must match. A class this run has and the earlier one
    did not starts fresh; returns a note saying which, or "" when the classes are the same.
    """
    import torch

    head = {k: state.pop(k) for k in [k for k in state if k.startswith("class_head.")]}
    if getattr(model, "patch_class_head", None) is None:  # this run does not train that term
        state = {k: v for k, v in state.items() if not k.startswith("patch_class_head.")}
    # a head the earlier run did not have is new
    _load_fitting(model, state, fresh=("class_head.", "patch_class_head."))
    own = model.class_head.fc
    if earlier is None:  # saved before checkpoints named their classes: same order, or none
        if head["class_head.fc.weight"].shape != own.weight.shape:
            return "its class head has other classes (not named in it); the head starts fresh"
        earlier = classes
    with torch.no_grad():
        for i, name in enumerate(classes):
            if name in earlier:
                own.weight[i] = head["class_head.fc.weight"][earlier.index(name)]
                own.bias[i] = head["class_head.fc.bias"][earlier.index(name)]
    new = [c for c in classes if c not in earlier]
    return f"classes new to the class head, learned from scratch: {', '.join(new)}" if new else ""


def _recipe(
    args: argparse.Namespace, classes: list[str], data: Any, train_idx: np.ndarray
) -> dict[str, Any]:
    return {
        "command": "inspect-app pretrain "
        + " ".join(sys.argv[2:] if sys.argv[1:2] == ["pretrain"] else sys.argv[1:]),
        "config": args.config,
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "bias_update_rate": args.bias_update_rate,
        "router_lr_scale": args.router_lr_scale,
        "init_from": str(args.init_from) if args.init_from else None,
        "data": [str(d) for d in args.data],
        "synthetic_seeds": [
            args.synthetic_first_seed,
            args.synthetic_first_seed + args.synthetic_lines - 1,
        ]
        if "synthetic" in args.data
        else None,
        "parts_per_line": args.parts_per_line,
        "anomaly_weight": args.anomaly_weight,
        "anomaly_lines": args.anomaly_lines,
        "anomaly_parts": args.anomaly_parts,
        "spread_weight": args.spread_weight,
        "patch_class_weight": args.patch_class_weight,
        "masked_patch_weight": args.masked_patch_weight,
        "masked_share": args.masked_share,
        "time_limit_min": args.time_limit,
        "classes": classes,
        "train_parts": len(train_idx),
        "held_out_parts": int(data.held_out.sum()),
        "torch": torch.__version__,
    }
