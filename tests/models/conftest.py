"""Model tests run single-threaded: on a small shared CPU, torch's thread pool only contends."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
