"""`inspect-app pretrain`: (re)train the backbone on synthetic lines and real data.

Multi-task (see models/pretraining.py): part class, per-patch defect map, masked-patch
prediction on images, and optionally the good-part memory objective on parts grouped by line;
modality dropout; routing-bias load balancing after every step. Writes
`OUT/backbone/` (config.json + model.safetensors, loadable with `InspectBackbone.from_pretrained`),
`OUT/log.jsonl` (losses per logged step), `OUT/last.pt` (resumable state) and
`OUT/recipe.json` (the command, seed, steps and data). Under `torchrun` with WORLD_SIZE > 1 it
trains with DistributedDataParallel; otherwise it is a plain single-process run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "(re)train the backbone on synthetic lines and real data"
DESCRIPTION = """\
Pretrain the multimodal backbone: part class, per-patch defect map and masked-patch prediction,
with strong augmentation and modality dropout. Data sources are cached as arrays in --cache, so
a second run starts training at once. Synthetic lines use seeds 1000+ (1-999 stay held out).

Example (the first stage of the shipped `tiny` checkpoint; all three stages' commands are in
models/checkpoints/tiny/recipe.json and docs/backbone.md):
  inspect-app pretrain --data synthetic ../shared/data/neu-det ../shared/data/cwru \\
      --config tiny --steps 1400 --batch-size 16 --out runs/pretrain-tiny --seed 0
A stage on a GPU, from an earlier stage's weights, its schedule ending after 6 minutes:
  inspect-app pretrain ... --init-from runs/pretrain-tiny-stage2/last.pt --batch-size 128 \\
      --steps 100000 --time-limit 6 --synthetic-lines 2000 --parts-per-line 8 --workers 16

Resume an interrupted run:   inspect-app pretrain ... --out runs/pretrain-tiny --resume
Many GPUs:                   torchrun --nproc-per-node 4 -m inspect_app pretrain ...
Memory objective:            ... --anomaly-weight 1 --anomaly-lines 8 --anomaly-parts 8
  (each step adds 8 synthetic lines x 8 parts; a patch's distance to the nearest patch of its
  line's other good parts should be large on a defect and small elsewhere; tried, it did not
  help on unseen lines yet: docs/backbone.md)
A machine without the datasets: --data synthetic CACHE/neu-det-<key>.npz CACHE/cwru-<key>.npz
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="SRC",
        help="`synthetic` and/or labelled dataset folders (e.g. NEU-DET, CWRU)",
    )
    parser.add_argument(
        "--config",
        default="tiny",
        help="backbone size: tiny (256 image tokens), tiny16 (64: 16 px patches), tinym (256, "
        "merged to 64 after the second block) or small",
    )
    parser.add_argument("--steps", type=int, default=1400, help="optimizer steps (default 1400)")
    parser.add_argument("--batch-size", type=int, default=16, help="parts per step per process")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--out", type=Path, default=Path("runs/pretrain"), help="output folder")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("runs/pretrain-cache"),
        help="where source arrays are cached (outside the repository)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument(
        "--synthetic-lines", type=int, default=80, help="how many synthetic lines (default 80)"
    )
    parser.add_argument(
        "--synthetic-first-seed",
        type=int,
        default=1000,
        metavar="SEED",
        help="seed of the first synthetic line (default 1000); the lines are SEED, SEED+1, ... "
        "and must stay in the pretraining range 1000-99999",
    )
    parser.add_argument("--parts-per-line", type=int, default=32)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that generate missing synthetic lines into the cache (default 1)",
    )
    parser.add_argument(
        "--anomaly-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="weight of the good-part memory objective (default 0: off). Each step then also "
        "trains on parts grouped by synthetic line: defect patches far from the line's other "
        "good parts' patches, good patches near them",
    )
    parser.add_argument(
        "--anomaly-lines", type=int, default=8, help="synthetic lines per step for that objective"
    )
    parser.add_argument(
        "--anomaly-parts",
        type=int,
        default=8,
        help="parts per line per step for that objective (at least 2 of them good)",
    )
    parser.add_argument(
        "--spread-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="weight of a spread term on the image tokens (VICReg variance + covariance; "
        "default 0: off): keeps them from collapsing onto the pretraining classes' few "
        "directions",
    )
    parser.add_argument(
        "--patch-class-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="weight of a per-patch class term (default 0: off): every visible patch of a part "
        "with a mask is asked for the part's class where the defect is and `ok` elsewhere, so "
        "the image tokens at a defect's place say which defect it is (what a taught line's "
        "classifier reads there)",
    )
    parser.add_argument(
        "--masked-patch-weight",
        type=float,
        default=1.0,
        metavar="W",
        help="weight of masked-patch prediction (default 1)",
    )
    parser.add_argument(
        "--masked-share",
        type=float,
        default=0.2,
        metavar="F",
        help="share of synthetic images trained on masked-patch prediction instead of their "
        "class (default 0.2; real images: 0.5)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="MIN",
        help="stop after MIN minutes of training, checkpoint and write the backbone as at the "
        "end; the learning-rate schedule then ends with the time (or at --steps, if sooner), "
        "and the recipe records the step reached: rerun elsewhere with --steps set to it",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads per process (default 1: shared machines)",
    )
    parser.add_argument(
        "--bf16", action="store_true", help="bfloat16 autocast on CPU too (always on for CUDA)"
    )
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument(
        "--bias-update-rate",
        type=float,
        default=0.02,
        help="routing-bias step per optimizer step (load balancing; default 0.02 for short runs)",
    )
    parser.add_argument(
        "--router-lr-scale",
        type=float,
        default=0.1,
        metavar="F",
        help="the routers' learning rate as a fraction of --lr (default 0.1): a router that "
        "learns as fast as the rest outpaces the routing bias and the experts' loads drift "
        "apart",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="PATH",
        help="start from the weights of an earlier run's OUT/last.pt (backbone and heads), or "
        "from a backbone folder (OUT/backbone, or a shipped one such as "
        "models/checkpoints/tiny: its heads start fresh), with a fresh optimizer and "
        "schedule; unlike --resume the run may change lr, steps and router settings",
    )


def run(args: argparse.Namespace) -> int:
    from inspect_app.pretrain_loop import train  # torch loads here, not for --help

    return train(args)
