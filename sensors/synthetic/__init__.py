"""Synthetic production lines: parts seen by a camera and heard by a vibration sensor.

A line is drawn from a seed (`LineSpec.from_seed`); `make_part` generates one part of it (image,
defect mask, vibration window) and `write_line` writes many as a dataset folder in the project's
`labels.csv` contract. Everything is deterministic from the seed. See docs/synthetic.md for the
physics and for which seeds are reserved for evaluation and demos.
"""

from sensors.synthetic.catalog import (
    CLASS_MODALITIES,
    DEFECT_CLASSES,
    IMAGE_CLASSES,
    VIBRATION_CLASSES,
    classes_for,
    visible_in,
)
from sensors.synthetic.line import SyntheticPart, draw_labels, make_part
from sensors.synthetic.spec import BearingGeometry, LineSpec, MachineSpec
from sensors.synthetic.writer import WriteOptions, WrittenLine, write_line

__all__ = [
    "CLASS_MODALITIES",
    "DEFECT_CLASSES",
    "IMAGE_CLASSES",
    "VIBRATION_CLASSES",
    "BearingGeometry",
    "LineSpec",
    "MachineSpec",
    "SyntheticPart",
    "WriteOptions",
    "WrittenLine",
    "classes_for",
    "draw_labels",
    "make_part",
    "visible_in",
    "write_line",
]
