"""What the console draws for a part: a camera's megapixels are reduced to a screen's size before
the heat-map is blended in, aspect kept; the defect box, in fractions of the frame, is unchanged."""

from __future__ import annotations

import numpy as np

from inspect_app.decision import Verdict
from inspect_app.pipeline import InspectedPart
from sensors.sample import Sample
from ui.worker import DISPLAY_MAX_SIDE, part_view


def _part(frame: np.ndarray) -> InspectedPart:
    verdict = Verdict(verdict="FAIL", defect_class="dent", defect_score=0.9, box=(0.5, 0.5, 1, 1))
    heat = np.zeros((16, 16), np.float32)
    heat[8:, 8:] = 1.0  # the defect in the bottom-right quarter
    return InspectedPart(sample=Sample(part_id="P1", frame=frame), verdict=verdict, heatmap=heat)


def test_a_five_megapixel_frame_is_drawn_at_screen_size_with_its_heat_map_in_place() -> None:
    frame = np.full((2048, 2448, 3), 100, np.uint8)
    view = part_view(_part(frame), "press", "v1", 0.5, None)
    assert view.image is not None
    h, w = view.image.shape[:2]
    assert w == DISPLAY_MAX_SIDE and abs(h - round(2048 * DISPLAY_MAX_SIDE / 2448)) <= 1
    assert view.box == (0.5, 0.5, 1, 1)
    tinted = np.abs(view.image.astype(int) - 100).sum(axis=2) > 30
    assert tinted[int(h * 0.8), int(w * 0.8)] and not tinted[int(h * 0.2), int(w * 0.2)]


def test_a_frame_that_fits_a_screen_is_drawn_as_it_is() -> None:
    frame = np.full((480, 640, 3), 100, np.uint8)
    view = part_view(_part(frame), "press", "v1", 0.5, None)
    assert view.image is not None and view.image.shape == (480, 640, 3)
